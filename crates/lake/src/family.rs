//! `event_family`: the partition column, derived from `event_type` by configured rules.

use serde::{Deserialize, Serialize};

/// The family of an event that no rule matches.
pub const OTHER_FAMILY: &str = "other";

/// One rule: events whose type matches `pattern` belong to `family`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FamilyRule {
    /// An exact event type (`page`), or a prefix ending in `*` (`track:Order *`).
    pub pattern: String,
    /// The family; it becomes a directory name, so letters, digits, `_` and `-` only.
    pub family: String,
}

impl FamilyRule {
    /// A rule from its two parts.
    pub fn new(pattern: &str, family: &str) -> FamilyRule {
        FamilyRule {
            pattern: pattern.into(),
            family: family.into(),
        }
    }

    fn matches(&self, event_type: &str) -> bool {
        match self.pattern.strip_suffix('*') {
            Some(prefix) => event_type.starts_with(prefix),
            None => event_type == self.pattern,
        }
    }

    /// Why the rule is unusable, if it is.
    pub fn validate(&self) -> Result<(), String> {
        if self.pattern.is_empty() {
            return Err("pattern is empty".into());
        }
        // Sliced by `strip_suffix`, not by a byte count: the last character may be wider than
        // a byte (`track:Café`).
        if self
            .pattern
            .strip_suffix('*')
            .unwrap_or(&self.pattern)
            .contains('*')
        {
            return Err(format!(
                "pattern {:?} may have `*` only at its end",
                self.pattern
            ));
        }
        let family_ok = !self.family.is_empty()
            && self.family.len() <= 64
            && self
                .family
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !family_ok {
            return Err(format!(
                "family {:?} must be 1-64 letters, digits, `_` or `-` (it names a directory)",
                self.family
            ));
        }
        Ok(())
    }
}

/// The default rules: the families the collector's edge also assigns.
pub fn default_rules() -> Vec<FamilyRule> {
    vec![
        FamilyRule::new("page", "page"),
        FamilyRule::new("screen", "page"),
        FamilyRule::new("identify", "identity"),
        FamilyRule::new("alias", "identity"),
        FamilyRule::new("group", "identity"),
        FamilyRule::new("track:*", "track"),
    ]
}

/// Rules in force.
#[derive(Debug, Clone)]
pub struct FamilyRules {
    rules: Vec<FamilyRule>,
}

impl FamilyRules {
    /// Rules from configuration (validated by [`crate::LakeConfig::validate`]).
    pub fn new(rules: Vec<FamilyRule>) -> FamilyRules {
        FamilyRules { rules }
    }

    /// The family of an event type.
    pub fn family_of(&self, event_type: &str) -> &str {
        self.rules
            .iter()
            .find(|rule| rule.matches(event_type))
            .map(|rule| rule.family.as_str())
            .unwrap_or(OTHER_FAMILY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_matching_rule_wins() {
        let mut rules = vec![FamilyRule::new("track:Order *", "commerce")];
        rules.extend(default_rules());
        let rules = FamilyRules::new(rules);
        assert_eq!(rules.family_of("track:Order Completed"), "commerce");
        assert_eq!(rules.family_of("track:Product Viewed"), "track");
        assert_eq!(rules.family_of("page"), "page");
        assert_eq!(rules.family_of("alias"), "identity");
        assert_eq!(rules.family_of("pageview"), "other");
    }

    #[test]
    fn families_must_be_directory_safe() {
        assert!(FamilyRule::new("page", "../x").validate().is_err());
        assert!(FamilyRule::new("a*b", "x").validate().is_err());
        assert!(FamilyRule::new("track:*", "track").validate().is_ok());
        // Regression: the check sliced off one byte and panicked inside a wide last character.
        assert!(FamilyRule::new("track:Café", "cafe").validate().is_ok());
        assert!(FamilyRule::new("tr*ck:Café", "cafe").validate().is_err());
    }
}
