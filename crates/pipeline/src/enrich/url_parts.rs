//! The parts of a page or referrer URL that enrichment reads: host, path and query.
//!
//! `url::Url::parse` runs the whole WHATWG algorithm (IDNA, IPv4 forms, dot segments,
//! percent-encoding) and builds a normalized copy of the text; it was most of the pipeline's
//! enrichment time. For the plain `https://host/path?query` links that make up nearly all
//! clickstream traffic none of that changes anything, so [`ParsedUrl::parse`] reads such a link
//! by slicing it — only when every character is one the WHATWG parser keeps as it is — and
//! hands anything else to `Url`. A proptest checks that both give the same parts.

use url::Url;

/// A parsed absolute URL: borrowed parts of a plain link, or the full parse of anything else.
#[derive(Debug)]
pub enum ParsedUrl<'a> {
    /// An `http`/`https` link whose text is already in normalized form.
    Plain {
        /// Lowercase host, no port.
        host: &'a str,
        /// Path, `/` when the link has none.
        path: &'a str,
        /// Query without the `?`, when there is one (possibly empty).
        query: Option<&'a str>,
    },
    /// Any other URL, parsed by `url`.
    Full(Url),
}

impl<'a> ParsedUrl<'a> {
    /// Parses an absolute URL (already trimmed); an error is what `Url::parse` says.
    pub fn parse(text: &'a str) -> Result<ParsedUrl<'a>, url::ParseError> {
        match plain(text) {
            Some(plain) => Ok(plain),
            None => Url::parse(text).map(ParsedUrl::Full),
        }
    }

    /// The host as `Url::host_str` gives it.
    pub fn host(&self) -> Option<&str> {
        match self {
            ParsedUrl::Plain { host, .. } => Some(host),
            ParsedUrl::Full(url) => url.host_str(),
        }
    }

    /// The path as `Url::path` gives it; `None` for URLs without a hierarchical path
    /// (`mailto:`, `data:`).
    pub fn path(&self) -> Option<&str> {
        match self {
            ParsedUrl::Plain { path, .. } => Some(path),
            ParsedUrl::Full(url) => (!url.cannot_be_a_base()).then(|| url.path()),
        }
    }

    /// The query as `Url::query` gives it.
    pub fn query(&self) -> Option<&str> {
        match self {
            ParsedUrl::Plain { query, .. } => *query,
            ParsedUrl::Full(url) => url.query(),
        }
    }
}

/// Reads `http(s)://host[/path][?query][#fragment]` when the WHATWG parser would keep every
/// part as written; `None` sends the text to the full parser.
fn plain(text: &str) -> Option<ParsedUrl<'_>> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (host, rest) = rest.split_at(authority_end);
    if !is_plain_host(host) {
        return None;
    }
    // The fragment never changes host, path or query, whatever it holds.
    let rest = ascii_position(rest, b'#').map_or(rest, |at| &rest[..at]);
    let (path, query) = match ascii_position(rest, b'?') {
        Some(at) => (&rest[..at], Some(&rest[at + 1..])),
        None => (rest, None),
    };
    if !is_plain_path(path) || !query.is_none_or(is_plain_query) {
        return None;
    }
    Some(ParsedUrl::Plain {
        host,
        path: if path.is_empty() { "/" } else { path },
        query,
    })
}

/// Dot-separated labels of lowercase letters, digits and inner hyphens; none punycode (`xn--`
/// is checked by IDNA), and the last starting with a letter (a last label that is a number
/// makes the host an IPv4 address, which has forms of its own).
fn is_plain_host(host: &str) -> bool {
    let plain_label = |label: &[u8]| {
        !label.is_empty()
            && label
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && label.first() != Some(&b'-')
            && label.last() != Some(&b'-')
            && !label.starts_with(b"xn--")
    };
    // Split as bytes: `str::split('.')` compares each match through a `memcmp` call, which
    // was most of this function's time.
    let mut labels = host.as_bytes().split(|&b| b == b'.');
    labels.clone().all(plain_label)
        && labels
            .next_back()
            .and_then(|last| last.first())
            .is_some_and(u8::is_ascii_lowercase)
}

/// The index of the first `byte` (ASCII, so a char boundary) in `text`.
fn ascii_position(text: &str, byte: u8) -> Option<usize> {
    text.bytes().position(|b| b == byte)
}

/// Characters the path keeps as written, and no dot segment (`.`, `..`, or their
/// percent-encoded forms), which the parser would resolve.
fn is_plain_path(path: &str) -> bool {
    if path.is_empty() {
        return true;
    }
    let bytes = path.as_bytes();
    if !path.starts_with('/') || !bytes.iter().all(|&b| PATH_BYTES[usize::from(b)]) {
        return false;
    }
    // A dot segment starts right after a slash; an encoded dot needs a `%`. Most paths have
    // neither, and skip both scans.
    let dot_segment = path.contains("/.")
        && path
            .split('/')
            .any(|segment| segment == "." || segment == "..");
    let encoded_dot =
        bytes.contains(&b'%') && bytes.windows(3).any(|w| w.eq_ignore_ascii_case(b"%2e"));
    !dot_segment && !encoded_dot
}

/// Characters the query keeps as written (for `http`, `'` is percent-encoded).
fn is_plain_query(query: &str) -> bool {
    query.bytes().all(|b| QUERY_BYTES[usize::from(b)])
}

/// Bytes a path keeps as written: letters, digits and `-._~!$&'()*+,;=:@/%`.
const PATH_BYTES: [bool; 256] = byte_set(b"-._~!$&'()*+,;=:@/%");
/// Bytes a query keeps as written: letters, digits and `-._~!$&()*+,;=:@/?%`.
const QUERY_BYTES: [bool; 256] = byte_set(b"-._~!$&()*+,;=:@/?%");

/// A lookup table of ASCII letters, digits and `extra`: one load per byte, where testing a
/// list of punctuation compared each byte with every entry.
const fn byte_set(extra: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        set[byte] = (byte as u8).is_ascii_alphanumeric();
        byte += 1;
    }
    let mut index = 0;
    while index < extra.len() {
        set[extra[index] as usize] = true;
        index += 1;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn everyday_links_take_the_plain_path() {
        for (text, host, path, query) in [
            ("https://shop.example.com", "shop.example.com", "/", None),
            (
                "https://shop.example.com/p/123?utm_source=news&x=%20#top",
                "shop.example.com",
                "/p/123",
                Some("utm_source=news&x=%20"),
            ),
            ("http://a1.b-c.io/?", "a1.b-c.io", "/", Some("")),
            (
                "https://www.google.com/search?q=a+b",
                "www.google.com",
                "/search",
                Some("q=a+b"),
            ),
        ] {
            let parsed = ParsedUrl::parse(text).unwrap();
            assert!(matches!(parsed, ParsedUrl::Plain { .. }), "{text}");
            assert_eq!(parsed.host(), Some(host), "{text}");
            assert_eq!(parsed.path(), Some(path), "{text}");
            assert_eq!(parsed.query(), query, "{text}");
        }
    }

    #[test]
    fn anything_the_parser_would_change_goes_to_it() {
        for text in [
            "HTTPS://Shop.Example.com/",
            "https://shop.example.com:8443/",
            "https://user@shop.example.com/",
            "https://192.168.0.1/",
            "https://shop.example.123/",
            "https://xn--bcher-kva.example/",
            "https://shop.example.com/a/../b",
            "https://shop.example.com/a/%2E%2e/b",
            "https://shop.example.com/a b",
            "https://shop.example.com/?q='x'",
            "https://shop.example.com/caf\u{e9}",
            "https://shop.example.com.",
            "mailto:someone@example.com",
        ] {
            let parsed = ParsedUrl::parse(text);
            assert!(!matches!(parsed, Ok(ParsedUrl::Plain { .. })), "{text}");
        }
        assert!(ParsedUrl::parse("not a url").is_err());
        assert!(ParsedUrl::parse("https://").is_err());
    }

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("https://".to_string()),
            Just("http://".to_string()),
            Just("Http://".to_string()),
            "[a-z]{1,6}",
            "[a-z0-9]{1,4}",
            Just(".".to_string()),
            Just("-".to_string()),
            Just("xn--".to_string()),
            "[0-9]{1,3}",
            "[A-Z]{1,2}",
            Just(":80".to_string()),
            Just("/".to_string()),
            Just("/..".to_string()),
            Just("/.".to_string()),
            Just("%2e".to_string()),
            Just("?".to_string()),
            Just("#".to_string()),
            Just("&".to_string()),
            Just("=".to_string()),
            "[ '\"<>`{}|\\\\^\t@%+]",
            "[é€]",
        ]
    }

    proptest! {
        /// Whenever the plain reading applies, `Url` agrees on host, path and query.
        #[test]
        fn plain_parts_are_what_the_full_parser_gives(
            pieces in proptest::collection::vec(piece(), 1..12),
            scheme in prop_oneof![Just("https://"), Just("http://")],
        ) {
            let text = format!("{scheme}{}", pieces.concat());
            if let Some(plain) = plain(&text) {
                let full = Url::parse(&text);
                prop_assert!(full.is_ok(), "{text}: {full:?}");
                let full = ParsedUrl::Full(full.unwrap());
                prop_assert_eq!(plain.host(), full.host(), "{}", text);
                prop_assert_eq!(plain.path(), full.path(), "{}", text);
                prop_assert_eq!(plain.query(), full.query(), "{}", text);
            }
        }
    }
}
