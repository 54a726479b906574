//! Text that people name things with, and what a page would render of it.
//!
//! A name may not hide what it says: no control characters and no Unicode format characters
//! (general category Cf: zero-width spaces and joiners, bidirectional marks, embeddings,
//! overrides and isolates, the byte-order mark, the soft hyphen, ...), except the joiners and
//! tags that emoji sequences are made of (👩‍💻, 🏴󠁧󠁢󠁳󠁣󠁴󠁿). Names that must be unique are compared by
//! [`name_key`]: `OrgA`, `ＯｒｇＡ` and `orga` are one name, while each keeps what was typed.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::emoji::{is_tag_character, is_zwj, UnicodeEmoji};
use unicode_properties::general_category::{GeneralCategory, UnicodeGeneralCategory};

/// The first character of `name` that a name may not hold, if any.
pub fn hidden_character(name: &str) -> Option<char> {
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            return Some(c);
        }
        if c.general_category() != GeneralCategory::Format {
            continue;
        }
        let emoji_before = i > 0 && joins(chars[i - 1]);
        let emoji_after = chars.get(i + 1).is_some_and(|n| n.is_emoji_char());
        let allowed = (is_zwj(c) && emoji_before && emoji_after)
            // A subdivision flag: 🏴 then tag letters, ended by the cancel tag.
            || (is_tag_character(c)
                && i > 0
                && (chars[i - 1] == '\u{1F3F4}' || is_tag_character(chars[i - 1])));
        if !allowed {
            return Some(c);
        }
    }
    None
}

/// What a zero-width joiner may follow in an emoji sequence: an emoji, or a presentation
/// selector or skin-tone modifier that ends one.
fn joins(c: char) -> bool {
    c.is_emoji_char() || c == '\u{FE0F}' || c.is_emoji_component()
}

/// `name` without the characters [`hidden_character`] refuses (for text that arrives from
/// elsewhere, such as a WeChat profile, rather than typed into a form of ours).
pub fn without_hidden_characters(name: &str) -> String {
    let mut kept = String::with_capacity(name.len());
    let mut rest = name.to_string();
    while let Some(c) = hidden_character(&rest) {
        let at = rest.find(c).expect("found in it");
        kept.push_str(&rest[..at]);
        rest = rest[at + c.len_utf8()..].to_string();
    }
    kept.push_str(&rest);
    kept
}

/// The form in which names are compared for uniqueness: compatibility-normalised (NFKC) and
/// case-folded, so that full-width, styled and differently cased spellings of one name are
/// one name. (Folding is lower-casing plus the full folds lower-casing misses: ß and ẞ to
/// "ss", final sigma to sigma; NFKC has already unfolded the ligatures.)
pub fn name_key(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.trim().nfkc().flat_map(char::to_lowercase) {
        match c {
            'ß' | 'ẞ' => folded.push_str("ss"),
            'ς' => folded.push('σ'),
            c => folded.push(c),
        }
    }
    folded.nfkc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_may_not_hide_characters() {
        for bad in [
            "Org\u{200B}A",
            "Org\u{202E}A",
            "\u{2066}Org",
            "Org\u{200E}",
            "\u{FEFF}Org",
            "Or\u{00AD}g",
            "Org\u{2028}A",
            "Org\u{200D}A",
            "A\u{7}",
        ] {
            assert!(hidden_character(bad).is_some(), "{bad:?}");
        }
        for good in [
            "OrgA",
            "合唱团",
            "Chœur d'été",
            "👩\u{200D}💻 club",
            "👍🏽\u{200D}👍 fans",
            "❤\u{FE0F}\u{200D}🔥",
            "🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} society",
            "مرحبا",
        ] {
            assert_eq!(hidden_character(good), None, "{good:?}");
        }
    }

    #[test]
    fn hidden_characters_can_be_left_out() {
        assert_eq!(without_hidden_characters("A\u{202E}li\u{200B}ce"), "Alice");
        assert_eq!(without_hidden_characters("👩\u{200D}💻"), "👩\u{200D}💻");
    }

    #[test]
    fn spellings_of_one_name_have_one_key() {
        let key = name_key("OrgA");
        for same in ["orga", "ORGA", "ＯｒｇＡ", " OrgA "] {
            assert_eq!(name_key(same), key, "{same:?}");
        }
        assert_ne!(name_key("OrgB"), key);
        assert_eq!(name_key("Straße"), name_key("STRASSE"));
        assert_eq!(name_key("ΟΔΟΣ"), name_key("οδος"));
    }
}
