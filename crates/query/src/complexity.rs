//! A limit on how deeply one SQL statement can nest its expressions, checked before DataFusion
//! sees the text.
//!
//! The parser builds chains of binary operators and casts (`1+1+1…`, `x::T::T…`, `a OR b OR
//! c…`) in a loop, so its recursion limit does not bound them, and the tree it builds is as deep
//! as the chain is long. Planning, optimizing, evaluating, cloning and dropping that tree then
//! recurse once per level, with frames of around a kilobyte in the planner: about 1,700 levels
//! overflowed a 2 MiB worker stack and aborted the whole server, ingest included — a stack
//! overflow is not a panic anything can catch. So the operators of a statement are counted on
//! its tokens, which needs no tree, and a statement with more than [`MAX_OPERATORS`] is refused.
//! The count bounds the depth from above; real queries stay far below it (a long `OR` list of
//! one column is `IN (…)`).

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::QueryError;

/// The most operators (arithmetic, comparison, logical, casts, subscripts) one statement may
/// have. With the server's 8 MiB worker stacks, the depth this allows uses under a tenth of the
/// stack in a release build.
pub const MAX_OPERATORS: usize = 500;

/// Refuses `sql` when it has more than [`MAX_OPERATORS`] operators. Text the tokenizer cannot
/// read passes: DataFusion's parser then reports the syntax error in its own words.
pub fn check(sql: &str) -> Result<(), QueryError> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return Ok(());
    };
    let operators = tokens.iter().filter(|token| is_operator(token)).count();
    if operators > MAX_OPERATORS {
        return Err(QueryError::TooComplex(format!(
            "the statement has {operators} operators, more than the {MAX_OPERATORS} allowed: \
             expressions nested that deep could exhaust the server's stack. Write long lists \
             of alternatives as `column IN (…)`, or split the query"
        )));
    }
    Ok(())
}

/// Whether `token` can join two expressions into a deeper one (or wrap one, for `NOT`).
fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(word) => {
            word.quote_style.is_none()
                && matches!(
                    word.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::XOR
                        | Keyword::NOT
                        | Keyword::IS
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::BETWEEN
                        | Keyword::IN
                        | Keyword::COLLATE
                        | Keyword::AT
                        | Keyword::DIV
                )
        }
        Token::LParen
        | Token::RParen
        | Token::RBracket
        | Token::Comma
        | Token::Period
        | Token::SemiColon
        | Token::Whitespace(_)
        | Token::Number(..)
        | Token::EOF => false,
        // What is left are symbols (operators, `::`, `[`) and literals. A literal made only of
        // punctuation (`'+'`) counts as one too, which errs on the safe side.
        other => {
            let text = other.to_string();
            !text.is_empty() && text.chars().all(|c| c.is_ascii_punctuation())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operators(sql: &str) -> usize {
        let tokens = Tokenizer::new(&GenericDialect {}, sql).tokenize().unwrap();
        tokens.iter().filter(|token| is_operator(token)).count()
    }

    #[test]
    fn counts_operators_and_not_names_literals_or_punctuation() {
        assert_eq!(operators("SELECT a, b FROM events"), 0);
        assert_eq!(
            operators("SELECT count(*) FROM events WHERE a = 'x' AND b <> 2 OR NOT c"),
            6 // =, AND, <>, OR, NOT, and the `*` of count(*)
        );
        assert_eq!(operators("SELECT x::BIGINT::TEXT, y[1] || 'z'"), 4);
        assert_eq!(
            operators("SELECT 1 -- a comment with + and *\n, 'a + b', \"and\""),
            0
        );
        assert_eq!(operators("SELECT a IN (1, 2, 3) AND b BETWEEN 1 AND 2"), 4);
    }

    #[test]
    fn refuses_a_chain_past_the_limit_and_names_it() {
        let at_limit = format!("SELECT 1{}", "+1".repeat(MAX_OPERATORS));
        assert!(check(&at_limit).is_ok());
        let past = format!("SELECT 1{}", "+1".repeat(MAX_OPERATORS + 1));
        let error = check(&past).unwrap_err();
        assert_eq!(error.code(), "too_complex");
        assert!(error.to_string().contains("501 operators"), "{error}");
        assert!(error.to_string().contains("IN (…)"), "{error}");
    }

    #[test]
    fn leaves_unreadable_text_to_the_parser() {
        assert!(check("SELECT 'unterminated").is_ok());
    }
}
