//! Values that parse: once built, they are valid.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("section must be one of stringed, wind, percussion (got {0:?})")]
    Section(String),
    #[error("role must be member or manager (got {0:?})")]
    Role(String),
    #[error("unknown absence type {0:?}; choices: {choices}", choices = AbsenceType::names())]
    AbsenceType(String),
    #[error(
        "name must be 1 to 64 characters without control, zero-width or bidirectional characters"
    )]
    Name,
    #[error("{0:?} is not a valid email address")]
    Email(String),
}

/// An orchestra section; each has its own absence quota per season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Stringed,
    Wind,
    Percussion,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Stringed, Section::Wind, Section::Percussion];

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "stringed" => Ok(Self::Stringed),
            "wind" => Ok(Self::Wind),
            "percussion" => Ok(Self::Percussion),
            other => Err(ValueError::Section(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stringed => "stringed",
            Self::Wind => "wind",
            Self::Percussion => "percussion",
        }
    }

    /// Absence quota per season: stringed 3, wind 2, percussion 1.
    pub fn quota(self) -> u32 {
        match self {
            Self::Stringed => 3,
            Self::Wind => 2,
            Self::Percussion => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Manager,
}

impl Role {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        match s.trim() {
            "member" => Ok(Self::Member),
            "manager" => Ok(Self::Manager),
            other => Err(ValueError::Role(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Member => "member",
            Self::Manager => "manager",
        }
    }
}

/// The seven kinds of rehearsal one can ask to miss. Their names (the API's and the events')
/// are written once, in [`AbsenceType::as_str`]; parsing and (de)serialising go through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbsenceType {
    Tutti,
    StringsSectional,
    WindsSectional,
    StringsEnsemble,
    WindsEnsemble,
    TuttiAndStringsSectional,
    TuttiAndWindsSectional,
}

impl AbsenceType {
    pub const ALL: [Self; 7] = [
        Self::Tutti,
        Self::StringsSectional,
        Self::WindsSectional,
        Self::StringsEnsemble,
        Self::WindsEnsemble,
        Self::TuttiAndStringsSectional,
        Self::TuttiAndWindsSectional,
    ];

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| ValueError::AbsenceType(s.to_string()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tutti => "全体排练",
            Self::StringsSectional => "弦乐分排",
            Self::WindsSectional => "管乐分排",
            Self::StringsEnsemble => "弦乐重奏",
            Self::WindsEnsemble => "管乐重奏",
            Self::TuttiAndStringsSectional => "全体排练+弦乐分排",
            Self::TuttiAndWindsSectional => "全体排练+管乐分排",
        }
    }

    /// The names, for messages: `全体排练, 弦乐分排, ...`.
    pub fn names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }

    /// What it costs from the quota: combined rehearsals count twice.
    pub fn cost(self) -> u32 {
        match self {
            Self::TuttiAndStringsSectional | Self::TuttiAndWindsSectional => 2,
            _ => 1,
        }
    }
}

/// A roster name: trimmed, 1 to 64 characters, no control characters and no characters that
/// hide what it says (zero-width, bidirectional: [`crate::text::hidden_character`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MemberName(String);

impl MemberName {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        if s.is_empty()
            || s.chars().count() > 64
            || s.chars().any(char::is_control)
            || crate::text::hidden_character(s).is_some()
        {
            return Err(ValueError::Name);
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address that can safely go into a mail header: one `@`, no white space or
/// control characters, at most 254 characters. Stored lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let s = s.trim();
        let bad = || ValueError::Email(s.to_string());
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        // The local part is a dot-atom: atoms of RFC 5322 atext joined by single dots.
        let atext = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        let local_ok = local.len() <= 64
            && local
                .split('.')
                .all(|atom| !atom.is_empty() && atom.chars().all(atext));
        // The domain is a host name: at least two labels of letters, digits and inner hyphens,
        // with a top-level label that is not all digits.
        let labels: Vec<&str> = domain.split('.').collect();
        let label_ok = |l: &&str| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let domain_ok = labels.len() >= 2
            && labels.iter().all(label_ok)
            && !labels[labels.len() - 1].chars().all(|c| c.is_ascii_digit());
        if !local_ok || !domain_ok {
            return Err(bad());
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AbsenceType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AbsenceType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_types_cost_two_and_others_one() {
        for t in ["全体排练", "弦乐分排", "管乐分排", "弦乐重奏", "管乐重奏"] {
            assert_eq!(AbsenceType::parse(t).unwrap().cost(), 1, "{t}");
        }
        for t in ["全体排练+弦乐分排", "全体排练+管乐分排"] {
            assert_eq!(AbsenceType::parse(t).unwrap().cost(), 2, "{t}");
        }
        assert!(AbsenceType::parse("全体").is_err());
    }

    #[test]
    fn absence_types_round_trip_through_their_wire_names() {
        let t = AbsenceType::parse("全体排练+管乐分排").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"全体排练+管乐分排\"");
        assert_eq!(t.as_str(), "全体排练+管乐分排");
    }

    #[test]
    fn quotas_are_three_two_one() {
        assert_eq!(Section::parse("stringed").unwrap().quota(), 3);
        assert_eq!(Section::parse("wind").unwrap().quota(), 2);
        assert_eq!(Section::parse("percussion").unwrap().quota(), 1);
        assert!(Section::parse("brass").is_err());
    }

    #[test]
    fn names_and_emails_reject_what_would_break_headers_or_lists() {
        assert!(MemberName::parse("  ").is_err());
        assert!(MemberName::parse("a\nb").is_err());
        assert_eq!(MemberName::parse(" David ").unwrap().as_str(), "David");
        assert!(EmailAddress::parse("a@b.org\r\nBcc: x@y.org").is_err());
        assert!(EmailAddress::parse("no-at-sign").is_err());
        assert!(EmailAddress::parse("a@b@c.org").is_err());
        assert_eq!(
            EmailAddress::parse("Boss@Orchestra.ORG").unwrap().as_str(),
            "boss@orchestra.org"
        );
    }

    #[test]
    fn emails_that_could_never_be_delivered_are_refused() {
        for bad in [
            "a..b@example.org",
            ".x@example.org",
            "x.@example.org",
            "x@-bad-.org",
            "x@bad-.org",
            "x@example..org",
            "x@localhost",
            "x@1.2.3.4",
            "x@exa_mple.org",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        for good in [
            "a.b+tag@example.org",
            "o'neil@mail.example-school.edu.cn",
            "x@a.io",
        ] {
            assert!(EmailAddress::parse(good).is_ok(), "{good}");
        }
    }
}
