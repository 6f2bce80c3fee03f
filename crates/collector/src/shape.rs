//! A single pass over one event's JSON that enforces the nesting and string-length limits
//! before the event is deserialized (serde_json's own recursion limit is far deeper and not
//! configurable per request), and refuses `\u` escapes that are lone UTF-16 surrogates.
//!
//! Why the surrogates: the collector keeps `context` and `properties` as raw JSON, and serde_json
//! checks only the hex digits of an escape it skips. `"\ud800"` was therefore acknowledged, and
//! then no decoder downstream could read the event into text — it reached the raw archive and
//! nothing else. Refusing it at the edge keeps "accepted" meaning "kept everywhere".

/// Why an event's JSON is outside the limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// Objects/arrays nested deeper than the limit.
    TooDeep {
        /// The configured limit.
        limit: usize,
    },
    /// A string (key or value) longer than the limit, in bytes as sent.
    StringTooLong {
        /// The configured limit.
        limit: usize,
        /// Its length.
        length: usize,
    },
    /// A `\u` escape of a UTF-16 surrogate without its other half: not a character.
    LoneSurrogate {
        /// Where the escape's backslash is, in bytes from the start of the event.
        offset: usize,
    },
}

/// Checks nesting depth, string lengths and surrogate escapes of syntactically valid JSON.
pub fn check(json: &[u8], max_depth: usize, max_string_bytes: usize) -> Result<(), ShapeError> {
    if let Some(offset) = lone_surrogate(json) {
        return Err(ShapeError::LoneSurrogate { offset });
    }
    // Fast path for the common event: no string can be longer than the whole event, and the
    // nesting cannot be deeper than the number of opening brackets (a count the compiler
    // vectorizes), so most events need no character-by-character walk at all.
    if json.len() <= max_string_bytes && opening_brackets(json) <= max_depth {
        return Ok(());
    }
    walk(json, max_depth, max_string_bytes)
}

/// The character-by-character check: tracks depth outside strings and each string's length.
fn walk(json: &[u8], max_depth: usize, max_string_bytes: usize) -> Result<(), ShapeError> {
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < json.len() {
        match json[i] {
            b'{' | b'[' => {
                depth += 1;
                if depth > max_depth {
                    return Err(ShapeError::TooDeep { limit: max_depth });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < json.len() {
                    match json[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        _ => i += 1,
                    }
                }
                let length = i.min(json.len()) - start;
                if length > max_string_bytes {
                    return Err(ShapeError::StringTooLong {
                        limit: max_string_bytes,
                        length,
                    });
                }
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The offset of the first `\u` escape in `json` that is a lone UTF-16 surrogate: a high one
/// (D800–DBFF) not followed at once by an escaped low one (DC00–DFFF), or a low one on its own.
/// Backslashes only occur inside strings in valid JSON, and most events have none, so this is
/// one vectorized search in the common case.
fn lone_surrogate(json: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = memchr::memchr(b'\\', json.get(from..)?) {
        let at = from + found;
        if json.get(at + 1) != Some(&b'u') {
            // `\\`, `\"` and the like: the escaped character is skipped with the backslash, so
            // an escaped backslash before a `u` is not taken for an escape.
            from = at + 2;
            continue;
        }
        match utf16_unit(json, at) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(utf16_unit(json, at + 6), Some(0xDC00..=0xDFFF)) {
                    return Some(at);
                }
                from = at + 12;
            }
            Some(0xDC00..=0xDFFF) => return Some(at),
            // Any other character, or digits that are not hex (serde reports those).
            _ => from = at + 6,
        }
    }
    None
}

/// The code unit of the `\uXXXX` escape starting at `at`, if there is one.
fn utf16_unit(json: &[u8], at: usize) -> Option<u16> {
    let escape = json.get(at..at + 6)?;
    if !escape.starts_with(b"\\u") {
        return None;
    }
    let digits = std::str::from_utf8(escape.get(2..)?).ok()?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(digits, 16).ok()
}

/// How many `{` and `[` bytes `json` holds (inside strings too: an upper bound on depth).
fn opening_brackets(json: &[u8]) -> usize {
    // Counted in byte-wide lanes per chunk of 255 (a count that cannot overflow a byte): eight
    // times as many bytes per vector instruction as summing into `usize`.
    json.chunks(255)
        .map(|chunk| {
            let count = chunk
                .iter()
                .fold(0u8, |n, &b| n + u8::from(b == b'{' || b == b'['));
            usize::from(count)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn depth_counts_objects_and_arrays() {
        assert!(check(br#"{"a":[{"b":1}]}"#, 3, 100).is_ok());
        assert_eq!(
            check(br#"{"a":[{"b":[1]}]}"#, 3, 100),
            Err(ShapeError::TooDeep { limit: 3 })
        );
    }

    #[test]
    fn bracket_count_spans_chunks_without_overflow() {
        let json: Vec<u8> = b"{[x".iter().copied().cycle().take(3 * 1000).collect();
        assert_eq!(opening_brackets(&json), 2000);
        assert_eq!(opening_brackets(b""), 0);
    }

    #[test]
    fn brackets_inside_strings_do_not_count() {
        assert!(check(br#"{"a":"[[[[{{{{\"]]"}"#, 1, 100).is_ok());
    }

    #[test]
    fn long_strings_are_named() {
        let json = format!(r#"{{"a":"{}"}}"#, "x".repeat(20));
        assert_eq!(
            check(json.as_bytes(), 5, 10),
            Err(ShapeError::StringTooLong {
                limit: 10,
                length: 20
            })
        );
    }

    #[test]
    fn lone_surrogates_are_found_and_pairs_and_escaped_backslashes_are_not() {
        assert_eq!(lone_surrogate(br#"{"a":"x\ud800"}"#), Some(7));
        assert_eq!(lone_surrogate(br#"{"a":"\uDC00\uD800"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"{"a":"\ud83d\ude00 \u00e9"}"#), None);
        assert_eq!(lone_surrogate(br#"{"a":"\\ud800"}"#), None);
        assert_eq!(lone_surrogate(br#"{"a":"\ud800\n"}"#), Some(6));
        assert_eq!(lone_surrogate(br#"{"a":"\ud800"#), Some(6));
        assert_eq!(
            check(br#"{"a":"\udfff"}"#, 5, 100),
            Err(ShapeError::LoneSurrogate { offset: 6 })
        );
    }

    proptest! {
        #[test]
        fn surrogate_check_agrees_with_serde(
            parts in prop::collection::vec(
                prop::sample::select(vec![
                    r"\ud800", r"\udbff", r"\udc00", r"\udfff", r"\u0041", r"\u00e9",
                    r"\\", r"\\u", "u", "d800", "a", r#"\""#,
                ]),
                0..8,
            ),
        ) {
            let json = format!(r#"["{}"]"#, parts.concat());
            let serde = serde_json::from_str::<Vec<String>>(&json);
            prop_assert_eq!(lone_surrogate(json.as_bytes()).is_none(), serde.is_ok(), "{}", json);
        }

        #[test]
        fn never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = check(&bytes, 4, 16);
        }

        #[test]
        fn fast_path_agrees_with_the_full_walk(
            bytes in prop::collection::vec(prop::sample::select(b"{}[]\"\\ax:,".to_vec()), 0..64),
            max_depth in 0usize..6,
            max_string in 0usize..70,
        ) {
            let full = walk(&bytes, max_depth, max_string);
            prop_assert_eq!(check(&bytes, max_depth, max_string).is_ok(), full.is_ok());
        }

        #[test]
        fn agrees_with_serde_on_depth(depth in 1usize..40) {
            let json = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            prop_assert_eq!(check(json.as_bytes(), 20, 100).is_ok(), depth <= 20);
        }
    }
}
