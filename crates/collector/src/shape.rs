//! A single pass over one event's JSON that enforces the nesting and string-length limits
//! before the event is deserialized (serde_json's own recursion limit is far deeper and not
//! configurable per request).

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
}

/// Checks nesting depth and string lengths of syntactically valid JSON.
pub fn check(json: &[u8], max_depth: usize, max_string_bytes: usize) -> Result<(), ShapeError> {
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

    proptest! {
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
