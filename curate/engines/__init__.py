"""Real Apache Flink and Apache Spark under Beam: the engines' jars (fetched once from Maven Central by
`curate engines fetch`, i.e. `make engines`), Beam's job server for each, and local clusters.

`curate run --runner flink|spark` starts Beam's job server for the engine from the fetched jars and
submits the recipe to it through Beam's portable runner; the job server runs it on Flink's embedded
mini-cluster (``flink_master: "[local]"``), on Spark's local mode (``spark_master_url: "local[2]"``) or
on the session / standalone cluster that the recipe names. Nothing is downloaded at run time.
"""
