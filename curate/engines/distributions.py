"""Where each engine's jars are, pinned to versions that work with the installed Beam SDK, and how
they are fetched (Maven's dependency plugin, from Maven Central) into the engines cache.

Beam's ready-made job-server jars (``beam-runners-flink-1.19-job-server``, ``beam-runners-spark-3-job-
server``) are not served by the Maven registry this project reaches, at any Beam version, and neither
are the Java runners at the Python SDK's version (2.77.0). Beam's Java runners 2.62.0 resolve with all
their dependencies; the job server is those runners' own driver class (what the job-server jar runs),
started on their resolved class path. The portable job API between the Python SDK and a job server is
versioned protocol buffers, and the tests run the Python SDK against this job server end to end.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from curate.core.errors import CurateError

# What the Maven registry these machines reach serves (its maven-metadata.xml, read through Maven with
# `mvn dependency:get -U -Dartifact=org.apache.beam:ARTIFACT:RELEASE`, 2026-12-04): beam-runners-flink-1.19
# and beam-runners-spark-3 up to 2.62.0 and 2.70.0 (nothing in between, none later); their dependency
# beam-runners-java-job-service up to 2.62.0 and 2.65.0 (no 2.63, 2.64, 2.66 or later); the ready-made
# beam-runners-{flink-1.19,spark-3}-job-server jars at no version at all. So 2.62.0 is the newest Beam
# whose Java runners resolve whole. The Python SDK cannot be pinned down to it: apache-beam 2.62.0 needs
# pyarrow<17, protobuf<6, grpcio<1.66 and dill 0.3.1, and this project needs pyarrow>=17 (its Parquet
# shards, exports) and numpy 2 (fastText). The mismatch is stated by `curate engines status`, and
# tests/engines/test_setup.py fails when the installed SDK is not the one this pin was checked against.
BEAM_JAVA_VERSION = "2.62.0"  # the newest Beam Java runners whose whole dependency tree is served
BEAM_PYTHON_CHECKED = "2.77"  # the Python SDK (major.minor) the pin above was checked and tested with
FLINK_VERSION = "1.19.0"  # what beam-runners-flink-1.19:2.62.0 is built against
SPARK_VERSION = "3.5.0"  # Spark 3 (Beam's Spark runner speaks Spark 3 only); Java 17 needs >= 3.3
SCALA_VERSION = "2.12"
FETCH_COMMAND = "make engines"  # (runs `curate engines fetch`)
COMPLETE = ".complete"  # written last: a half-fetched folder is never taken for a whole one


@dataclass(frozen=True)
class Distribution:
    """One engine's jars: Beam's runner for it (with its job-server driver) and the engine itself."""

    engine: str
    folder: str
    artifacts: tuple[str, ...]  # group:artifact:version, resolved with their runtime dependencies
    job_server_class: str
    master_flag: str
    default_master: str
    master_option: str  # the recipe's runner option that names the master

    @property
    def home(self) -> Path:
        # The artifacts' digest in the name: a change of pins fetches anew instead of reusing old jars.
        digest = hashlib.sha256("\n".join(self.artifacts).encode()).hexdigest()[:8]
        return engines_dir() / f"{self.folder}-{digest}"

    @property
    def lib(self) -> Path:
        return self.home / "lib"

    def classpath(self) -> str:
        """The ``-cp`` of every JVM of this engine; one line naming the fix when it is not fetched."""
        if not (self.home / COMPLETE).is_file():
            raise CurateError(
                f"the {self.engine} runner needs Beam's {self.engine} job server and {self.engine.title()}'s "
                f"jars in {self.lib}, which are not there; fetch them with `{FETCH_COMMAND}` (or "
                "`curate engines fetch`)"
            )
        return str(self.lib / "*")


FLINK = Distribution(
    engine="flink",
    folder=f"flink-{FLINK_VERSION}-beam-{BEAM_JAVA_VERSION}",
    artifacts=(
        f"org.apache.beam:beam-runners-flink-1.19:{BEAM_JAVA_VERSION}",
        # A logging backend for the slf4j 1.7 that Beam and Flink log through (errors only by default).
        "org.apache.logging.log4j:log4j-slf4j-impl:2.20.0",
        "org.apache.logging.log4j:log4j-core:2.20.0",
    ),
    job_server_class="org.apache.beam.runners.flink.FlinkJobServerDriver",
    master_flag="--flink-master",
    default_master="[local]",
    master_option="flink_master",
)
SPARK = Distribution(
    engine="spark",
    folder=f"spark-{SPARK_VERSION}-beam-{BEAM_JAVA_VERSION}",
    artifacts=(
        f"org.apache.beam:beam-runners-spark-3:{BEAM_JAVA_VERSION}",
        # Beam's Spark runner declares Spark "provided": the engine itself, for the job server's driver
        # and for the standalone master and workers.
        f"org.apache.spark:spark-core_{SCALA_VERSION}:{SPARK_VERSION}",
        f"org.apache.spark:spark-streaming_{SCALA_VERSION}:{SPARK_VERSION}",
        # Spark logs through slf4j 2 (log4j2); Beam's older slf4j-api would otherwise win the resolution.
        "org.slf4j:slf4j-api:2.0.7",
    ),
    job_server_class="org.apache.beam.runners.spark.SparkJobServerDriver",
    master_flag="--spark-master-url",
    default_master="local[2]",
    master_option="spark_master_url",
)
DISTRIBUTIONS = {"flink": FLINK, "spark": SPARK}


def version_note() -> str:
    """One line on the Java job servers' Beam version against the Python SDK's, and why they differ."""
    from apache_beam.version import __version__ as sdk

    if sdk == BEAM_JAVA_VERSION:
        return f"Beam {sdk} on both sides (the Python SDK and the Java job servers)"
    line = (
        f"Beam's Python SDK is {sdk} and the Java job servers are Beam {BEAM_JAVA_VERSION}: the newest "
        "Beam Java runners the reachable Maven registry serves whole (their job-server jars are not "
        "served at all); they speak the versioned portable job API, tested end to end"
    )
    if not sdk.startswith(BEAM_PYTHON_CHECKED + "."):
        line += (
            f"; WARNING: this pairing was checked with SDK {BEAM_PYTHON_CHECKED}.x, not {sdk}: "
            "re-check which Beam Java runners Maven serves and rerun tests/engines"
        )
    return line


def engines_dir() -> Path:
    """``$CURATE_ENGINES_DIR``, or ``~/.cache/curate/engines``: kept between runs and checkouts."""
    return Path(os.environ.get("CURATE_ENGINES_DIR") or Path.home() / ".cache" / "curate" / "engines")


def _pom(distribution: Distribution) -> str:
    dependencies = "\n".join(
        "    <dependency><groupId>{}</groupId><artifactId>{}</artifactId><version>{}</version>"
        "</dependency>".format(*coordinate.split(":"))
        for coordinate in distribution.artifacts
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>curate.engines</groupId><artifactId>{distribution.engine}</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def fetch(distribution: Distribution, mvn: str = "mvn") -> Path:
    """Resolve the distribution's jars with Maven into its folder (a no-op when already complete)."""
    if (distribution.home / COMPLETE).is_file():
        return distribution.lib
    if not shutil.which(mvn):
        raise CurateError(f"`{mvn}` not found: install Maven (Debian: apt-get install maven) and rerun")
    distribution.home.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{distribution.folder}-", dir=distribution.home.parent))
    try:
        (staging / "pom.xml").write_text(_pom(distribution), encoding="utf-8")
        command = [mvn, "-q", "-B", "-f", str(staging / "pom.xml"), "dependency:copy-dependencies"]
        command += ["-DincludeScope=runtime", f"-DoutputDirectory={staging / 'lib'}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stdout.splitlines() if "ERROR" in line] or [done.stderr]
            raise CurateError(f"Maven could not fetch the {distribution.engine} jars: {errors[0].strip()}")
        if distribution.engine == "spark":
            # Spark's Worker builds each executor's class path from SPARK_HOME/jars (a RELEASE file marks a
            # distribution): this folder is that SPARK_HOME.
            (staging / "jars").symlink_to("lib")
            (staging / "RELEASE").write_text(f"Spark {SPARK_VERSION} (jars fetched by curate)\n")
        staging.chmod(0o755)
        (staging / COMPLETE).write_text("\n".join(distribution.artifacts) + "\n", encoding="utf-8")
        shutil.rmtree(distribution.home, ignore_errors=True)
        staging.rename(distribution.home)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return distribution.lib
