//! The words, tokens and per-line counts of curate's quality rules, split as spaCy's English tokenizer
//! splits them: the same algorithm as `filters/spacy_words.py` (its pure-Python twin and reference),
//! over the same data. Every list (prefixes, suffixes, units, special cases) and every character class
//! comes from Python when the splitter is built: the class of each character is what Python's `str`
//! methods and the `regex`/`re` modules say, so both sides agree on every Unicode version.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyString, PyTuple};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

// Character classes, one bit each (the order of `CHAR_CLASSES` in filters/native_words.py).
const ALPHA: u16 = 1 << 0; // str.isalpha
const NUMERIC: u16 = 1 << 1; // str.isnumeric
const LETTER_CLASS: u16 = 1 << 2; // regex \p{L}
const LOWER: u16 = 1 << 3; // regex [\p{Ll}\p{Lo}]
const UPPER: u16 = 1 << 4; // regex [\p{Lu}\p{Lo}]
const SYMBOL: u16 = 1 << 5; // regex \p{So}
const HAS_LETTER: u16 = 1 << 6; // re [^\W\d_]
const WORD_CHAR: u16 = 1 << 7; // regex \w
const DIGIT: u16 = 1 << 8; // regex \d
const PUNCTUATION: u16 = 1 << 9; // datatrove's PUNCTUATION_SET
const SPACE: u16 = 1 << 10; // str.isspace

const BMP: usize = 0x10000;

/// Python's line boundaries (`str.splitlines`); "\r\n" is one.
fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}'
    )
}

fn ascii_digit(c: char) -> bool {
    c.is_ascii_digit()
}

fn to_string(chars: &[char]) -> String {
    chars.iter().collect()
}

/// One chunk's tokens as ranges of its characters.
type Spans = Vec<(usize, usize)>;

/// Shared by Beam's bundle threads: every call holds the GIL, the lock only guards the class cache.
#[pyclass(frozen, module = "curate_native")]
struct Splitter {
    bmp: Vec<u16>,
    astral: Mutex<HashMap<u32, u16>>,
    classes_of: PyObject,
    // FxHash: these are looked up for every chunk and token, where SipHash would cost more than the rest
    specials: HashMap<String, Vec<String>, Fx>,
    mergeable: HashSet<String, Fx>,
    prefixes: HashMap<char, Vec<Vec<char>>, Fx>,
    suffixes: HashSet<String, Fx>,
    currency: HashSet<String, Fx>,
    units: HashSet<String, Fx>,
    quotes: HashSet<char, Fx>,
    punct: HashSet<char, Fx>,
    hyphens: Vec<Vec<char>>,
    infix_chars: HashSet<char, Fx>,
    longest_suffix: usize,
}

/// What a chunk became: its tokens, which are words (not punctuation/symbols only), and how many of the
/// words hold a letter.
struct ChunkTokens {
    tokens: Vec<String>,
    words: Vec<bool>,
    alpha_words: usize,
}

impl Splitter {
    fn classes(&self, c: char) -> u16 {
        let code = c as u32;
        if (code as usize) < BMP {
            return self.bmp[code as usize];
        }
        if let Some(found) = self.astral.lock().unwrap().get(&code) {
            return *found;
        }
        let found = Python::with_gil(|py| {
            self.classes_of.call1(py, (code,)).and_then(|v| v.extract::<u16>(py)).unwrap_or(0)
        });
        self.astral.lock().unwrap().insert(code, found);
        found
    }

    fn has(&self, c: char, class: u16) -> bool {
        self.classes(c) & class != 0
    }

    fn is_special(&self, chars: &[char]) -> bool {
        self.specials.contains_key(&to_string(chars))
    }

    fn prefix_len(&self, s: &[char]) -> usize {
        let Some(&first) = s.first() else { return 0 };
        if let Some(literals) = self.prefixes.get(&first) {
            if let Some(found) = literals.iter().find(|lit| s.starts_with(lit)) {
                return found.len();
            }
        }
        if first == '+' && !s.get(1).copied().is_some_and(ascii_digit) {
            return 1;
        }
        if first == '.' && s.get(1) == Some(&'.') {
            return s.iter().take_while(|&&c| c == '.').count();
        }
        if self.has(first, SYMBOL) {
            return 1;
        }
        0
    }

    /// Whether one of spaCy's suffixes is exactly `s[p..]` (lookbehinds see `s[..p]`).
    fn suffix_at(&self, s: &[char], p: usize) -> bool {
        let tail = &s[p..];
        let text = to_string(tail);
        if self.suffixes.contains(&text) {
            return true;
        }
        if tail.len() >= 2 && tail.iter().all(|&c| c == '.') {
            return true;
        }
        if tail.len() == 1 && self.has(tail[0], SYMBOL) {
            return true;
        }
        let before = if p > 0 { Some(s[p - 1]) } else { None };
        let digit_before = before.is_some_and(ascii_digit);
        if digit_before && (text == "+" || self.currency.contains(&text) || self.units.contains(&text)) {
            return true;
        }
        if text == "." {
            if p >= 2 && s[p - 2] == '°' && matches!(s[p - 1], 'F' | 'f' | 'C' | 'c' | 'K' | 'k') {
                return true;
            }
            if let Some(b) = before {
                if ascii_digit(b)
                    || self.has(b, LOWER)
                    || matches!(b, '%' | '²' | '-' | '+')
                    || self.quotes.contains(&b)
                    || self.punct.contains(&b)
                {
                    return true;
                }
            }
            if p >= 2 && self.has(s[p - 2], UPPER) && self.has(s[p - 1], UPPER) {
                return true;
            }
        }
        false
    }

    /// `_search_suffix`: the length of the leftmost suffix starting at or after `start`.
    fn suffix_len(&self, s: &[char], start: usize) -> usize {
        let mut start = start;
        if !s.ends_with(&['.', '.']) {
            start = start.max(s.len().saturating_sub(self.longest_suffix));
        }
        (start..s.len()).find(|&p| self.suffix_at(s, p)).map_or(0, |p| s.len() - p)
    }

    /// `_peel`: prefixes and suffixes off one chunk until a special case or no change.
    fn peel(&self, chars: &[char]) -> (Spans, (usize, usize), Spans) {
        let (mut lo, mut hi) = (0usize, chars.len());
        let mut prefixes: Spans = Vec::new();
        let mut suffixes: Spans = Vec::new();
        let mut last = usize::MAX;
        while lo < hi && hi - lo != last && !self.is_special(&chars[lo..hi]) {
            let chunk = &chars[lo..hi];
            last = chunk.len();
            let pre = self.prefix_len(chunk);
            if pre > 0 && self.is_special(&chunk[pre..]) {
                prefixes.push((lo, lo + pre));
                return (prefixes, (lo + pre, hi), suffixes);
            }
            let suf = self.suffix_len(chunk, pre);
            if suf > 0 && self.is_special(&chunk[..chunk.len() - suf]) {
                suffixes.push((hi - suf, hi));
                return (prefixes, (lo, hi - suf), suffixes);
            }
            if pre > 0 && suf > 0 && pre + suf <= chunk.len() {
                prefixes.push((lo, lo + pre));
                suffixes.push((hi - suf, hi));
                lo += pre;
                hi -= suf;
            } else if pre > 0 {
                prefixes.push((lo, lo + pre));
                lo += pre;
            } else if suf > 0 {
                suffixes.push((hi - suf, hi));
                hi -= suf;
            }
        }
        (prefixes, (lo, hi), suffixes)
    }

    /// The length of the infix matching at `i` of `s`, alternatives tried in `_INFIXES`' order.
    fn infix_at(&self, s: &[char], i: usize) -> usize {
        let c = s[i];
        let next = s.get(i + 1).copied();
        let before = if i > 0 { Some(s[i - 1]) } else { None };
        if c == '.' && next == Some('.') {
            return s[i..].iter().take_while(|&&d| d == '.').count();
        }
        if c == '…' || self.has(c, SYMBOL) {
            return 1;
        }
        if before.is_some_and(ascii_digit)
            && matches!(c, '+' | '-' | '*' | '^')
            && next.is_some_and(|n| ascii_digit(n) || n == '-')
        {
            return 1;
        }
        if c == '.'
            && before.is_some_and(|b| self.has(b, LOWER) || self.quotes.contains(&b))
            && next.is_some_and(|n| self.has(n, UPPER) || self.quotes.contains(&n))
        {
            return 1;
        }
        let alpha = |x: Option<char>| x.is_some_and(|x| self.has(x, LETTER_CLASS));
        if c == ',' && alpha(before) && alpha(next) {
            return 1;
        }
        if alpha(before) || before.is_some_and(ascii_digit) {
            for hyphen in &self.hyphens {
                if s[i..].starts_with(hyphen) && alpha(s.get(i + hyphen.len()).copied()) {
                    return hyphen.len();
                }
            }
            if matches!(c, ':' | '<' | '>' | '=' | '/') && alpha(next) {
                return 1;
            }
        }
        0
    }

    fn may_have_infix(&self, s: &[char]) -> bool {
        !s.iter().all(|&c| c.is_ascii() && !self.infix_chars.contains(&c))
    }

    /// `_split_chunk`: the tokens of one whitespace-free chunk that is not plain.
    fn split_chunk(&self, chars: &[char]) -> Vec<String> {
        let (prefixes, (lo, hi), suffixes) = self.peel(chars);
        let mut out: Vec<String> = prefixes.iter().map(|&(a, b)| to_string(&chars[a..b])).collect();
        let core = &chars[lo..hi];
        let core_text = to_string(core);
        if let Some(parts) = self.specials.get(&core_text) {
            out.extend(parts.iter().cloned());
        } else if core.contains(&'.') && self.is_url(core) {
            out.push(core_text);
        } else if !core.is_empty() {
            let mut begin = 0;
            if self.may_have_infix(core) {
                let mut i = 0;
                while i < core.len() {
                    let n = self.infix_at(core, i);
                    if n == 0 {
                        i += 1;
                        continue;
                    }
                    if i != 0 {
                        if i != begin {
                            out.push(to_string(&core[begin..i]));
                        }
                        out.push(to_string(&core[i..i + n]));
                        begin = i + n;
                    }
                    i += n;
                }
            }
            if begin < core.len() {
                out.push(to_string(&core[begin..]));
            }
        }
        out.extend(suffixes.iter().rev().map(|&(a, b)| to_string(&chars[a..b])));
        if out.len() > 1 {
            self.merge_specials(&mut out);
        }
        out
    }

    /// `_merge_specials`: re-join tokens that spell a special case.
    fn merge_specials(&self, out: &mut Vec<String>) {
        let mut i = 0;
        while i < out.len() {
            let mut j = out.len().min(i + 4);
            while j > i + 1 {
                let joined: String = out[i..j].concat();
                if self.mergeable.contains(&joined) {
                    let parts = self.specials[&joined].clone();
                    out.splice(i..j, parts);
                    break;
                }
                j -= 1;
            }
            i += 1;
        }
    }

    fn is_plain(&self, chunk: &str) -> bool {
        let mut alpha = true;
        let mut numeric = true;
        for c in chunk.chars() {
            let classes = self.classes(c);
            alpha &= classes & ALPHA != 0;
            numeric &= classes & NUMERIC != 0;
            if !alpha && !numeric {
                return false;
            }
        }
        !chunk.is_empty() && !self.specials.contains_key(chunk)
    }

    fn is_word(&self, token: &str) -> bool {
        token.chars().any(|c| !self.has(c, PUNCTUATION))
    }

    fn has_letter(&self, token: &str) -> bool {
        token.chars().any(|c| self.has(c, HAS_LETTER))
    }

    /// `_chunk_units`: a chunk's tokens, which of them are words, and how many words hold a letter.
    fn chunk_tokens(&self, chunk: &str) -> ChunkTokens {
        if self.is_plain(chunk) {
            let alpha_words = usize::from(self.has_letter(chunk));
            return ChunkTokens { tokens: vec![chunk.to_string()], words: vec![true], alpha_words };
        }
        let chars: Vec<char> = chunk.chars().collect();
        let tokens = self.split_chunk(&chars);
        let words: Vec<bool> = tokens.iter().map(|t| self.is_word(t)).collect();
        let alpha_words = tokens.iter().zip(&words).filter(|(t, &w)| w && self.has_letter(t)).count();
        ChunkTokens { tokens, words, alpha_words }
    }

    /// The chunks of `text` as `str.split()` gives them, each with the index of its `str.splitlines()`
    /// line, and the number of lines.
    fn chunks<'t>(&self, text: &'t str) -> (Vec<(&'t str, usize)>, usize) {
        let mut out = Vec::new();
        let mut line = 0usize;
        let mut line_has_chars = false;
        let mut start: Option<usize> = None;
        let mut iter = text.char_indices().peekable();
        while let Some((at, c)) = iter.next() {
            if self.has(c, SPACE) {
                if let Some(s) = start.take() {
                    out.push((&text[s..at], line));
                }
                if is_line_break(c) {
                    if c == '\r' && iter.peek().map(|&(_, n)| n) == Some('\n') {
                        iter.next();
                    }
                    line += 1;
                    line_has_chars = false;
                    continue;
                }
            } else if start.is_none() {
                start = Some(at);
            }
            line_has_chars = true;
        }
        if let Some(s) = start {
            out.push((&text[s..], line));
        }
        (out, line + usize::from(line_has_chars))
    }
}

fn strings(items: &[String]) -> Vec<Vec<char>> {
    items.iter().map(|s| s.chars().collect()).collect()
}

#[pymethods]
impl Splitter {
    /// Built once per process by filters/native_words.py from spacy_words.py's lists; `bmp` holds the
    /// classes of the first 65,536 code points (two bytes each, little-endian), `classes_of(code)` gives
    /// those of any other (asked once per character, then kept).
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bmp: &[u8],
        classes_of: PyObject,
        specials: HashMap<String, Vec<String>>,
        mergeable: HashSet<String>,
        prefixes: Vec<String>,
        suffixes: Vec<String>,
        currency: Vec<String>,
        units: Vec<String>,
        quotes: String,
        punct: String,
        hyphens: Vec<String>,
        infix_chars: String,
        longest_suffix: usize,
    ) -> PyResult<Self> {
        if bmp.len() != 2 * BMP {
            return Err(PyValueError::new_err(format!(
                "the character classes table has {} bytes, expected {}",
                bmp.len(),
                2 * BMP
            )));
        }
        let mut by_first: HashMap<char, Vec<Vec<char>>, Fx> = HashMap::default();
        for literal in strings(&prefixes) {
            if let Some(&first) = literal.first() {
                by_first.entry(first).or_default().push(literal);
            }
        }
        Ok(Splitter {
            bmp: bmp.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect(),
            astral: Mutex::new(HashMap::new()),
            classes_of,
            specials: specials.into_iter().collect(),
            mergeable: mergeable.into_iter().collect(),
            prefixes: by_first,
            suffixes: suffixes.into_iter().collect(),
            currency: currency.into_iter().collect(),
            units: units.into_iter().collect(),
            quotes: quotes.chars().collect(),
            punct: punct.chars().collect(),
            hyphens: strings(&hyphens),
            infix_chars: infix_chars.chars().collect(),
            longest_suffix,
        })
    }

    /// The tokens of one whitespace-free chunk (`spacy_words.split_chunk`).
    fn split_chunk_tokens<'py>(&self, py: Python<'py>, chunk: &str) -> PyResult<Bound<'py, PyTuple>> {
        let tokens = if self.is_plain(chunk) {
            vec![chunk.to_string()]
        } else {
            self.split_chunk(&chunk.chars().collect::<Vec<_>>())
        };
        PyTuple::new(py, tokens)
    }

    /// Tokens of `text` split on whitespace as spaCy does (`text_units.split_line` without segmented
    /// scripts): their texts, and the same list with "" for each punctuation/symbol token.
    fn split_marked<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> (Vec<Bound<'py, PyString>>, Vec<Bound<'py, PyString>>) {
        let empty = PyString::new(py, "");
        let mut texts = Vec::new();
        let mut marked = Vec::new();
        for (chunk, _) in self.chunks(text).0 {
            let found = self.chunk_tokens(chunk);
            for (token, word) in found.tokens.iter().zip(found.words) {
                let token = PyString::new(py, token);
                marked.push(if word { token.clone() } else { empty.clone() });
                texts.push(token);
            }
        }
        (texts, marked)
    }

    /// The first four of `document_units` (what curate before it called; a checkout of an older
    /// revision run against this build, as bench/pipeline.py --baseline does, still calls it).
    #[allow(clippy::type_complexity)]
    fn text_units<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> (Vec<Bound<'py, PyString>>, Vec<Bound<'py, PyString>>, Vec<usize>, usize) {
        let (tokens, words, per_line, alpha_words, ..) = self.document_units(py, text);
        (tokens, words, per_line, alpha_words)
    }

    /// One document's units for `TextUnits`: every token, the word tokens, the tokens on each
    /// `str.splitlines()` line, how many words hold a letter, the whitespace-separated chunks on each
    /// line, the words' characters, and the lines that (stripped) start with a bullet ("•", "-") or
    /// end with an ellipsis ("...", "…"): whitespace here is `str.split`'s and `str.strip`'s.
    #[allow(clippy::type_complexity)]
    fn document_units<'py>(
        &self,
        py: Python<'py>,
        text: &str,
    ) -> (
        Vec<Bound<'py, PyString>>,
        Vec<Bound<'py, PyString>>,
        Vec<usize>,
        usize,
        Vec<usize>,
        usize,
        usize,
        usize,
    ) {
        let (chunks, n_lines) = self.chunks(text);
        let mut tokens = Vec::new();
        let mut words = Vec::new();
        let mut per_line = vec![0usize; n_lines];
        let mut chunks_per_line = vec![0usize; n_lines];
        let mut alpha_words = 0;
        let mut word_chars = 0;
        let mut bullet_lines = 0;
        let mut ellipsis_lines = 0;
        let mut previous: Option<(&str, usize)> = None;
        for (chunk, line) in chunks {
            if chunks_per_line[line] == 0 && (chunk.starts_with('\u{2022}') || chunk.starts_with('-')) {
                bullet_lines += 1;
            }
            chunks_per_line[line] += 1;
            if let Some((last, last_line)) = previous {
                if last_line != line && ends_with_ellipsis(last) {
                    ellipsis_lines += 1;
                }
            }
            previous = Some((chunk, line));
            if self.is_plain(chunk) {
                // most chunks: one word, made from the text without an intermediate String
                per_line[line] += 1;
                alpha_words += usize::from(self.has_letter(chunk));
                word_chars += chunk.chars().count();
                let token = PyString::new(py, chunk);
                words.push(token.clone());
                tokens.push(token);
                continue;
            }
            let found = self.chunk_tokens(chunk);
            per_line[line] += found.tokens.len();
            alpha_words += found.alpha_words;
            for (token, word) in found.tokens.iter().zip(found.words) {
                let token_string = PyString::new(py, token);
                if word {
                    word_chars += token.chars().count();
                    words.push(token_string.clone());
                }
                tokens.push(token_string);
            }
        }
        if let Some((last, _)) = previous {
            if ends_with_ellipsis(last) {
                ellipsis_lines += 1;
            }
        }
        (
            tokens,
            words,
            per_line,
            alpha_words,
            chunks_per_line,
            word_chars,
            bullet_lines,
            ellipsis_lines,
        )
    }
}

fn ends_with_ellipsis(chunk: &str) -> bool {
    chunk.ends_with("...") || chunk.ends_with('\u{2026}')
}

impl Splitter {
    /// spaCy's URL_MATCH (`_URL` in spacy_words.py) on a whole core: scheme, user, IPv4 or host name,
    /// port, path; every way the optional parts can split the core is tried, as the regex backtracks.
    fn is_url(&self, s: &[char]) -> bool {
        let n = s.len();
        let mut starts = vec![0usize];
        if let Some(p) = (0..n.saturating_sub(2)).find(|&p| s[p] == ':') {
            if p >= 2
                && s[p..].starts_with(&[':', '/', '/'])
                && s[..p].iter().all(|&c| self.has(c, WORD_CHAR) || matches!(c, '+' | '-' | '.'))
            {
                starts.push(p + 3);
            }
        }
        let mut hosts = Vec::new();
        for &at in &starts {
            hosts.push(at);
            // \S+(?::\S*)?@ : any characters, then "@"
            hosts.extend((at + 1..n).filter(|&q| s[q] == '@').map(|q| q + 1));
        }
        hosts.sort_unstable();
        hosts.dedup();
        for host in hosts {
            let mut ends = self.ipv4_ends(s, host);
            ends.extend(self.domain_ends(s, host));
            for end in ends {
                let mut after = vec![end];
                if s.get(end) == Some(&':') {
                    for k in 2..=5 {
                        if end + 1 + k <= n && s[end + 1..end + 1 + k].iter().all(|&c| self.has(c, DIGIT)) {
                            after.push(end + 1 + k);
                        }
                    }
                }
                for a in after {
                    if a == n || matches!(s[a], '/' | '?' | '#') {
                        return true;
                    }
                }
            }
        }
        false
    }

    fn digit(&self, s: &[char], i: usize) -> bool {
        s.get(i).is_some_and(|&c| self.has(c, DIGIT))
    }

    /// Ends of one IPv4 octet at `i`: `first` [1-9]\d?|1\d\d|2[01]\d|22[0-3], `last` [1-9]\d?|1\d\d|
    /// 2[0-4]\d|25[0-4], else 1?\d{1,2}|2[0-4]\d|25[0-5].
    fn octet_ends(&self, s: &[char], i: usize, first: bool, last: bool) -> Vec<usize> {
        let at = |k: usize| s.get(i + k).copied();
        let in_range = |k: usize, lo: char, hi: char| at(k).is_some_and(|c| (lo..=hi).contains(&c));
        let mut ends = Vec::new();
        if first || last {
            if in_range(0, '1', '9') {
                ends.push(i + 1);
                if self.digit(s, i + 1) {
                    ends.push(i + 2);
                }
            }
            if at(0) == Some('1') && self.digit(s, i + 1) && self.digit(s, i + 2) {
                ends.push(i + 3);
            }
            if first {
                if at(0) == Some('2') && in_range(1, '0', '1') && self.digit(s, i + 2) {
                    ends.push(i + 3);
                }
                if at(0) == Some('2') && at(1) == Some('2') && in_range(2, '0', '3') {
                    ends.push(i + 3);
                }
            } else {
                if at(0) == Some('2') && in_range(1, '0', '4') && self.digit(s, i + 2) {
                    ends.push(i + 3);
                }
                if at(0) == Some('2') && at(1) == Some('5') && in_range(2, '0', '4') {
                    ends.push(i + 3);
                }
            }
        } else {
            let skip = usize::from(at(0) == Some('1'));
            for from in [0, skip] {
                if self.digit(s, i + from) {
                    ends.push(i + from + 1);
                    if self.digit(s, i + from + 1) {
                        ends.push(i + from + 2);
                    }
                }
            }
            if at(0) == Some('2') && in_range(1, '0', '4') && self.digit(s, i + 2) {
                ends.push(i + 3);
            }
            if at(0) == Some('2') && at(1) == Some('5') && in_range(2, '0', '5') {
                ends.push(i + 3);
            }
        }
        ends.sort_unstable();
        ends.dedup();
        ends
    }

    fn ipv4_ends(&self, s: &[char], start: usize) -> Vec<usize> {
        let mut ends = self.octet_ends(s, start, true, false);
        for part in 0..3 {
            let mut next = Vec::new();
            for end in ends {
                if s.get(end) == Some(&'.') {
                    next.extend(self.octet_ends(s, end + 1, false, part == 2));
                }
            }
            next.sort_unstable();
            next.dedup();
            ends = next;
        }
        ends
    }

    /// Ends of `(?:(?:A[A_-]{0,62})?A\.)+[a-z\u00a1-\uffff]{2,63}\.?` at `start`, A being
    /// [A-Za-z0-9\u00a1-\uffff].
    fn domain_ends(&self, s: &[char], start: usize) -> Vec<usize> {
        let host_char = |c: char| c.is_ascii_alphanumeric() || ('\u{a1}'..='\u{ffff}').contains(&c);
        let label_char = |c: char| host_char(c) || c == '_' || c == '-';
        let tld_char = |c: char| c.is_ascii_lowercase() || ('\u{a1}'..='\u{ffff}').contains(&c);
        let n = s.len();
        let mut after_labels = vec![false; n + 1];
        let mut reached = vec![false; n + 1];
        reached[start] = true;
        for x in start..n {
            if !reached[x] || !host_char(s[x]) {
                continue;
            }
            // a label s[x..y] (1 to 64 characters, first and last in A) followed by "."
            for y in x + 1..=(x + 64).min(n) {
                if y - 1 > x && !label_char(s[y - 1]) {
                    break;
                }
                if host_char(s[y - 1]) && s.get(y) == Some(&'.') {
                    reached[y + 1] = true;
                    after_labels[y + 1] = true;
                }
            }
        }
        let mut ends = Vec::new();
        for t in start..=n {
            if !after_labels[t] {
                continue;
            }
            let run = s[t..].iter().take(63).take_while(|&&c| tld_char(c)).count();
            for k in 2..=run {
                ends.push(t + k);
                if s.get(t + k) == Some(&'.') {
                    ends.push(t + k + 1);
                }
            }
        }
        ends
    }
}

/// FxHash (rustc's): n-gram keys are short slices of word ids, where SipHash would cost more than the
/// rest of the walk.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }
    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type Fx = BuildHasherDefault<FxHasher>;

/// Gopher's repetition counts over a document's tokens (filters/gopher.py, as datatrove 0.10.1 defines
/// them): for each n of `top`, the characters of the most frequent n-gram (words joined by spaces) times
/// its count, the first seen on a tie; for each n of `dup`, the characters (words joined without spaces)
/// of the repeated n-grams datatrove's left-to-right walk finds, jumping past each repeat. N-grams are
/// compared as sequences of words: keyed by a rolling 64-bit hash of their word ids (one multiply-add per
/// position and length instead of hashing n ids), every hash match is checked word by word, and a length
/// where two different n-grams share a hash is counted again keyed by the words themselves.
#[pyfunction]
fn ngram_chars(tokens: Vec<PyBackedStr>, top: Vec<usize>, dup: Vec<usize>) -> (Vec<usize>, Vec<usize>) {
    let mut ids: HashMap<&str, u32, Fx> = HashMap::default();
    let words: Vec<u32> = tokens
        .iter()
        .map(|t| {
            let next = ids.len() as u32;
            *ids.entry(t.as_ref()).or_insert(next)
        })
        .collect();
    let mut starts = Vec::with_capacity(tokens.len() + 1);
    starts.push(0usize);
    for t in &tokens {
        starts.push(starts.last().unwrap() + t.chars().count());
    }
    let chars = |i: usize, n: usize| starts[i + n] - starts[i];
    let mut hashes = NGramHashes::new(&words);
    // once no n-gram of a length repeats, no longer one does
    let mut repeats = true;
    let top_chars = top
        .iter()
        .map(|&n| {
            if words.len() < n {
                return 0;
            }
            if !repeats {
                return chars(0, n) + n - 1;
            }
            let (best, first) =
                top_ngram(&words, n, hashes.of(n)).unwrap_or_else(|| top_ngram_exact(&words, n));
            repeats = best > 1;
            best * (chars(first, n) + n - 1)
        })
        .collect();
    let dup_chars = dup
        .iter()
        .map(|&n| {
            if !repeats || words.len() < n {
                return 0;
            }
            let total = dup_walk(&words, n, hashes.of(n), &chars)
                .unwrap_or_else(|| dup_walk_exact(&words, n, &chars));
            repeats = total > 0; // the walk saw every n-gram once: none repeats
            total
        })
        .collect();
    (top_chars, dup_chars)
}

/// Hashes of every n-gram of one length, extended to the next length in place.
struct NGramHashes<'w> {
    words: &'w [u32],
    n: usize,
    hashes: Vec<u64>,
}

impl<'w> NGramHashes<'w> {
    fn new(words: &'w [u32]) -> Self {
        NGramHashes { words, n: 0, hashes: vec![0; words.len()] }
    }

    /// `hashes[i]`: the hash of words[i..i + n] (for i + n <= len); lengths are asked in increasing order.
    fn of(&mut self, n: usize) -> &[u64] {
        while self.n < n {
            let last = self.n; // word added at offset `last` of each n-gram
            self.hashes.truncate(self.words.len() - last);
            for (i, h) in self.hashes.iter_mut().enumerate() {
                *h = h.wrapping_mul(0x100000001b3).wrapping_add(mix(self.words[i + last]));
            }
            self.n += 1;
        }
        &self.hashes
    }
}

/// A word id spread over 64 bits (SplitMix64's finalizer), so that sums of products do not collide by
/// structure.
fn mix(id: u32) -> u64 {
    let mut z = u64::from(id).wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// The most frequent n-gram's count and first position (first seen on a tie); None on a hash collision.
fn top_ngram(words: &[u32], n: usize, hashes: &[u64]) -> Option<(usize, usize)> {
    let mut counts: HashMap<u64, (usize, usize), Fx> = HashMap::default();
    counts.reserve(hashes.len());
    for (i, &h) in hashes.iter().enumerate() {
        let entry = counts.entry(h).or_insert((0, i));
        if entry.1 != i && words[entry.1..entry.1 + n] != words[i..i + n] {
            return None;
        }
        entry.0 += 1;
    }
    Some(best_of(counts.values()))
}

fn top_ngram_exact(words: &[u32], n: usize) -> (usize, usize) {
    let mut counts: HashMap<&[u32], (usize, usize), Fx> = HashMap::default();
    for i in 0..=words.len() - n {
        counts.entry(&words[i..i + n]).or_insert((0, i)).0 += 1;
    }
    best_of(counts.values())
}

fn best_of<'a>(counts: impl Iterator<Item = &'a (usize, usize)>) -> (usize, usize) {
    counts.fold((0, usize::MAX), |(c, f), &(count, at)| {
        if count > c || (count == c && at < f) { (count, at) } else { (c, f) }
    })
}

/// Characters of the repeats datatrove's walk finds, or None on a hash collision.
fn dup_walk(
    words: &[u32],
    n: usize,
    hashes: &[u64],
    chars: &dyn Fn(usize, usize) -> usize,
) -> Option<usize> {
    let mut seen: HashMap<u64, usize, Fx> = HashMap::default();
    seen.reserve(hashes.len());
    let (mut total, mut i) = (0, 0);
    while i + n <= words.len() {
        match seen.entry(hashes[i]) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
                i += 1;
            }
            std::collections::hash_map::Entry::Occupied(slot) => {
                let at = *slot.get();
                if words[at..at + n] != words[i..i + n] {
                    return None;
                }
                total += chars(i, n);
                i += n;
            }
        }
    }
    Some(total)
}

fn dup_walk_exact(words: &[u32], n: usize, chars: &dyn Fn(usize, usize) -> usize) -> usize {
    let mut seen: HashSet<&[u32], Fx> = HashSet::default();
    let (mut total, mut i) = (0, 0);
    while i + n <= words.len() {
        if seen.insert(&words[i..i + n]) {
            i += 1;
        } else {
            total += chars(i, n);
            i += n;
        }
    }
    total
}

#[pymodule]
fn curate_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Splitter>()?;
    module.add_function(wrap_pyfunction!(ngram_chars, module)?)?;
    Ok(())
}
