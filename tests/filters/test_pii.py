"""PII redaction (filters/pii.py): planted e-mails, IPs, phones and card numbers in real text are replaced
exactly as configured; private addresses and numbers failing Luhn stay; nothing is rejected."""

from __future__ import annotations

import pytest

from curate.config import parse_config
from curate.filters.pii import (
    DATATROVE_EMAIL_REPLACEMENTS,
    DATATROVE_IP_REPLACEMENTS,
    PiiConfig,
    PiiRedactor,
    luhn_valid,
)

PUBLIC = [
    "jane.doe@example-mail.com", "8.8.8.8", "2001:4860:4860::8888", "+1 415-555-2671", "4111 1111 1111 1111",
]  # fmt: skip
KEPT = [
    "192.168.1.20",
    "10.0.0.5",
    "127.0.0.1",
    "fe80::1",
    "::1",
    "fd00::7",
    "4111 1111 1111 1112",
    "12:30:45",
]


@pytest.fixture(scope="module")
def real_text(jsonl_texts) -> str:
    return jsonl_texts[0][:1500]  # the first document of cc_en_head-0091


def planted(text: str) -> str:
    return (
        f"{text}\nWrite to jane.doe@example-mail.com or Ops.Team@Example.ORG. Our server is 8.8.8.8 "
        "(gateway 192.168.1.20, db 10.0.0.5, local 127.0.0.1); IPv6 2001:4860:4860::8888, link fe80::1, "
        "loopback ::1, ULA fd00::7. Call +1 415-555-2671 or (212) 555-0199. Opening at 12:30:45.\n"
        "Pay with 4111 1111 1111 1111 or 5500-0000-0000-0004; not 4111 1111 1111 1112.\n"
    )


def test_every_public_item_is_replaced_private_and_invalid_ones_stay(real_text):
    redactor = PiiRedactor(PiiConfig(phones=True, cards=True))
    text, counts = redactor.redact(planted(real_text))
    assert counts == {"pii_emails": 2, "pii_ips": 2, "pii_phones": 2, "pii_cards": 2}
    for item in PUBLIC + ["Ops.Team@Example.ORG", "(212) 555-0199", "5500-0000-0000-0004"]:
        assert item not in text
    for item in KEPT:
        assert item in text
    assert text.startswith(real_text)  # the real text around the items is untouched
    assert f"Write to {DATATROVE_EMAIL_REPLACEMENTS[0]} or {DATATROVE_EMAIL_REPLACEMENTS[1]}." in text
    assert (
        f"server is {DATATROVE_IP_REPLACEMENTS[0]} " in text
        and f"IPv6 {DATATROVE_IP_REPLACEMENTS[1]}," in text
    )
    assert "Call 555-0100 or 555-0100." in text
    assert "Pay with 0000 0000 0000 0000 or 0000 0000 0000 0000; not 4111 1111 1111 1112." in text


def test_defaults_are_datatrove_emails_and_public_ips_only(real_text):
    text, counts = PiiRedactor(PiiConfig()).redact(planted(real_text))
    assert counts == {"pii_emails": 2, "pii_ips": 2, "pii_phones": 0, "pii_cards": 0}
    assert "+1 415-555-2671" in text and "4111 1111 1111 1111" in text


def test_all_ips_when_not_only_public():
    text, counts = PiiRedactor(PiiConfig(only_public_ips=False)).redact("at 10.0.0.5 and ::1 and 1.2.3")
    assert counts["pii_ips"] == 2 and "10.0.0.5" not in text and "1.2.3" in text


def test_replacements_by_config_cycle_and_restart_per_document():
    cfg = parse_config({"stages": {"pii": {"enabled": True, "email_replacement": ["<EMAIL1>", "<EMAIL2>"]}}})
    redactor = PiiRedactor(cfg.stages.pii)
    docs = [{"text": "a@b.com c@d.com e@f.com"}, {"text": "g@h.com"}]
    annotations = redactor.annotate(docs)
    assert annotations[0]["text"] == "<EMAIL1> <EMAIL2> <EMAIL1>"
    assert annotations[1]["text"] == "<EMAIL1>"  # same output whichever worker saw what before
    assert all(redactor.decide(a, d) is None for a, d in zip(annotations, docs, strict=True))


def test_untouched_documents_carry_no_text_annotation():
    (annotations,) = PiiRedactor(PiiConfig()).annotate([{"text": "nothing personal here"}])
    assert "text" not in annotations and annotations["pii_emails"] == 0


def test_luhn():
    assert luhn_valid("4111 1111 1111 1111") and luhn_valid("5500-0000-0000-0004")
    assert not luhn_valid("4111 1111 1111 1112")
