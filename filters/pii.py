"""PII redaction: e-mail addresses and public IP addresses (as datatrove's formatters/pii.py), and
optionally phone numbers and payment-card numbers. Pure text logic; nothing is rejected.

Private, loopback, link-local and reserved addresses stay (they identify nobody): an address is replaced
only when Python's ``ipaddress`` calls it global, as in datatrove. A card number is replaced only when
its digits pass the Luhn check, so order numbers and ISBN-like digit runs stay. Replacements cycle
through each type's list as in datatrove, but restart with every document, so the output does not depend
on which worker saw which documents before.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from functools import partial

from pydantic import Field

from curate.core.config import MAX_BATCH, Fixed, StageConfig
from curate.filters.base import Annotations, Doc, FilterSpec, FilterStageDef

# datatrove 0.10.1 formatters/pii.py: example.com/org are reserved for examples; the IPs are datatrove's
# list of random addresses that "did not respond to ping requests at the time the list was created".
DATATROVE_EMAIL_REPLACEMENTS = ("email@example.com", "firstname.lastname@example.org")
DATATROVE_IP_REPLACEMENTS = (
    "22.214.171.124",
    "126.96.36.199",
    "188.8.131.52",
    "184.108.40.206",
    "220.127.116.11",
    "18.104.22.168",
)
# Not in datatrove: 555-0100..0199 are fictional numbers (NANP); all-zero digits are no card.
PHONE_REPLACEMENTS = ("555-0100",)
CARD_REPLACEMENTS = ("0000 0000 0000 0000",)


class PiiConfig(StageConfig):
    """The `pii` stage: which kinds of personal data are replaced, and by what."""

    enabled: bool = False
    emails: bool = Field(True, description="Replace e-mail addresses.")
    ips: bool = Field(True, description="Replace IPv4 and IPv6 addresses.")
    only_public_ips: bool = Field(True, description="Keep private, loopback and reserved addresses.")
    phones: bool = Field(False, description="Replace phone numbers (international or NANP formats).")
    cards: bool = Field(False, description="Replace payment-card numbers that pass the Luhn check.")
    email_replacement: list[str] = Field(list(DATATROVE_EMAIL_REPLACEMENTS), min_length=1)
    ip_replacement: list[str] = Field(list(DATATROVE_IP_REPLACEMENTS), min_length=1)
    phone_replacement: list[str] = Field(list(PHONE_REPLACEMENTS), min_length=1)
    card_replacement: list[str] = Field(list(CARD_REPLACEMENTS), min_length=1)
    batch_size: int = Field(256, ge=1, le=MAX_BATCH, description="Documents per annotate call.")


# datatrove's patterns (its e-mail pattern is lower-case only; here the whole scan ignores case, so
# Jane.Doe@X.ORG is found too).
EMAIL = (
    r"\b[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:(?:[a-z0-9](?:[a-z0-9-]*["
    r"a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]*[a-z0-9])?|\[(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25["
    r"0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?|[a-z0-9-]*[a-z0-9]:)])"
)
IPV4 = r"(?:(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\.){3}(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
# Candidates only (hex groups and colons, at least two colons); ipaddress decides what is an address, so
# clock times (12:30:45) and MAC addresses are not replaced.
IPV6 = r"(?<![\w:.])(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?<=:):)(?![\w:])"
CARD = r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"
# +CC and an optional area code in parentheses, then groups separated by space, dot or hyphen.
PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{2,4}[ .-])"
    r"\d{2,4}[ .-]\d{3,4}(?:[ .-]\d{2,4})?(?![\w-])"
)

ANNOTATIONS: dict[str, str] = {
    "pii_emails": "int32",
    "pii_ips": "int32",
    "pii_phones": "int32",
    "pii_cards": "int32",
}


def is_public_ip(candidate: str, public_only: bool = True) -> bool:
    """datatrove's public_ip_validator: a valid address, global unless every address counts."""
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return not public_only or address.is_global


def luhn_valid(candidate: str) -> bool:
    """The Luhn checksum every payment card number carries (ISO/IEC 7812)."""
    total = 0
    for position, char in enumerate(reversed([c for c in candidate if c.isdigit()])):
        digit = int(char) * (2 if position % 2 else 1)
        total += digit - 9 if digit > 9 else digit
    return total % 10 == 0


def phone_digits_ok(candidate: str) -> bool:
    return 7 <= sum(c.isdigit() for c in candidate) <= 15  # E.164: at most 15 digits


class PiiRedactor:
    """Rewrites each document's text (returned as its ``text`` annotation) and counts replacements.

    One scan with one alternation, so a replacement is never scanned again (datatrove's IP replacements
    would look like phone numbers) and the earlier kind wins where two overlap: e-mail (which may hold an
    IP literal), IPv4, IPv6, card (a card's digit groups would pass for a phone), phone. A match that fails
    its check (a private IP, a card failing Luhn) stays as it is.
    """

    annotation_types = ANNOTATIONS

    def __init__(self, cfg: PiiConfig):
        public = partial(is_public_ip, public_only=cfg.only_public_ips)
        kinds: list[tuple[str, str, str, Sequence[str], Callable[[str], bool] | None]] = []
        if cfg.emails:
            kinds.append(("email", EMAIL, "pii_emails", cfg.email_replacement, None))
        if cfg.ips:
            kinds.append(("ipv4", IPV4, "pii_ips", cfg.ip_replacement, public))
            kinds.append(("ipv6", IPV6, "pii_ips", cfg.ip_replacement, public))
        if cfg.cards:
            kinds.append(("card", CARD, "pii_cards", cfg.card_replacement, luhn_valid))
        if cfg.phones:
            kinds.append(("phone", PHONE, "pii_phones", cfg.phone_replacement, phone_digits_ok))
        self._kinds = {group: (counter, tuple(repl), check) for group, _, counter, repl, check in kinds}
        pattern = "|".join(f"(?P<{group}>{regex})" for group, regex, *_ in kinds)
        self._pattern = re.compile(pattern, re.IGNORECASE) if kinds else None

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        counts = dict.fromkeys(ANNOTATIONS, 0)
        if self._pattern is None:
            return text, counts

        def substitute(match: re.Match) -> str:
            found = match.group(0)
            counter, replacements, check = self._kinds[match.lastgroup or ""]
            if check is not None and not check(found):
                return found
            replacement = replacements[counts[counter] % len(replacements)]
            counts[counter] += 1
            return replacement

        return self._pattern.sub(substitute, text), counts

    def annotate(self, docs: Sequence[Doc]) -> list[Annotations]:
        out: list[Annotations] = []
        for doc in docs:
            text, counts = self.redact(doc.get("text") or "")
            out.append({**counts, "text": text} if any(counts.values()) else counts)
        return out

    def decide(self, annotations: Annotations, doc: Doc) -> str | None:
        return None  # redaction rewrites; it never rejects


def stage_spec(cfg: PiiConfig) -> FilterSpec:
    return FilterSpec(partial(PiiRedactor, cfg))


STAGE = FilterStageDef(name="pii", config=PiiConfig, spec=stage_spec, annotations=Fixed(ANNOTATIONS))
