"""Run at image build time: every model a default recipe needs loads inside the image, from its own disk."""

from curate.core.tokenizer import prepare
from curate.filters import langid, toxicity

langid.load_fasttext(langid.default_model_path(), "stages.langid.model")
toxicity.ProfanityCheckClassifier().predict_proba(["a polite sentence"])
assert prepare("gpt2").vocab_size == 50257
print("models ok: lid.176.ftz, alt-profanity-check, GPT-2 BPE")
