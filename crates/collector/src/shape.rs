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
        fn agrees_with_serde_on_depth(depth in 1usize..40) {
            let json = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
            prop_assert_eq!(check(json.as_bytes(), 20, 100).is_ok(), depth <= 20);
        }
    }
}
