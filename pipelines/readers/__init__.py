"""Read crawl files into documents: one module per format, each with its own resynchronisation.

- ``warc.py``: WARC and WET (plain: records framed and checked here; gzip: resume at the next member)
- ``jsonl.py``: JSON Lines, plain/gzip/zstd (encoding, line ends, damaged members via ``members.py``)
- ``parquet.py``: Parquet (row groups that cannot be decoded)
- ``records.py``: what they all yield (documents, ``unreadable``/``too_large`` rejections)
- ``formats.py``: which reader a file needs; ``transforms.py``: the Beam transforms over them
"""

from curate.pipelines.readers.formats import detect_format, expand_inputs, read_file, record_ranges
from curate.pipelines.readers.records import READ_STAGE, Document, InputConfig, too_large, unreadable
from curate.pipelines.readers.transforms import InputUnit, ReadDocuments, ReadProblems
from curate.pipelines.readers.warc import read_warc

__all__ = [
    "READ_STAGE",
    "Document",
    "InputConfig",
    "InputUnit",
    "ReadDocuments",
    "ReadProblems",
    "detect_format",
    "expand_inputs",
    "read_file",
    "read_warc",
    "record_ranges",
    "too_large",
    "unreadable",
]
