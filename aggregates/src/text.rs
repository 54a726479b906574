//! Text that people name things with, and what a page would render of it.
//!
//! A name may not hide what it says: no control characters, no Unicode format characters
//! (general category Cf: zero-width spaces and joiners, bidirectional marks, embeddings,
//! overrides and isolates, the byte-order mark, the soft hyphen, ...) and nothing else that
//! renders as nothing (the combining grapheme joiner, Hangul fillers, variation selectors, the
//! braille blank), except what emoji sequences are made of (👩‍💻, ❤️, 🏴󠁧󠁢󠁳󠁣󠁴󠁿); and it must show
//! something. Names that must be unique are compared by
//! [`name_key`]: `OrgA`, `ＯｒｇＡ` and `orga` are one name, while each keeps what was typed.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::emoji::{is_tag_character, is_zwj, UnicodeEmoji};
use unicode_properties::general_category::{GeneralCategory, UnicodeGeneralCategory};

/// Characters that render as nothing (or as a blank) whatever their category: Unicode's
/// default-ignorable code points that are not format characters (the combining grapheme
/// joiner, Hangul fillers, Mongolian variation selectors, Khmer inherent vowels, variation
/// selectors) and the braille blank.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}'
        | '\u{2800}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FFA0}' | '\u{E0100}'..='\u{E01EF}')
}

/// A pictograph an emoji sequence is built of (not the digits and `#*` that also have the
/// emoji property).
fn pictograph(c: char) -> bool {
    !c.is_ascii() && c.is_emoji_char()
}

/// Whether each character of `chars` may stand in a name: no control characters, no format
/// characters (Cf) and nothing [`invisible`], except what emoji sequences are made of: a
/// presentation selector (VS15, VS16) after a pictograph, a zero-width joiner between two
/// pictographs (a skin tone or a selector may end the first), and the tag letters of a
/// subdivision flag (🏴, tags, then the cancel tag).
fn allowed(chars: &[char]) -> Vec<bool> {
    let mut ok = vec![true; chars.len()];
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let before = i.checked_sub(1).map(|j| chars[j]);
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            ok[i] = false;
        } else if matches!(c, '\u{FE0E}' | '\u{FE0F}') {
            ok[i] = before.is_some_and(pictograph);
        } else if is_zwj(c) {
            // What it joins: the pictograph before (past a skin tone or a selector), and the
            // one after.
            let first = chars[..i]
                .iter()
                .rev()
                .find(|c| !matches!(c, '\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}'));
            ok[i] = first.is_some_and(|c| pictograph(*c))
                && chars.get(i + 1).is_some_and(|n| pictograph(*n));
        } else if is_tag_character(c) {
            // A whole run of tags, after a black flag, ended by the cancel tag.
            let end = (i..chars.len())
                .find(|&j| !is_tag_character(chars[j]))
                .unwrap_or(chars.len());
            let flag = before == Some('\u{1F3F4}');
            let cancelled = chars[end - 1] == '\u{E007F}' && end - i >= 2;
            let only_letters = chars[i..end - 1].iter().all(|t| {
                ('\u{E0061}'..='\u{E007A}').contains(t) || ('\u{E0030}'..='\u{E0039}').contains(t)
            });
            for slot in ok.iter_mut().take(end).skip(i) {
                *slot = flag && cancelled && only_letters;
            }
            i = end;
            continue;
        } else if c.general_category() == GeneralCategory::Format || invisible(c) {
            ok[i] = false;
        }
        i += 1;
    }
    ok
}

/// The first character of `name` that a name may not hold, if any; or, when it holds nothing
/// but white space and what renders as nothing, its first character (a name must show).
pub fn hidden_character(name: &str) -> Option<char> {
    let chars: Vec<char> = name.chars().collect();
    let ok = allowed(&chars);
    if let Some(i) = ok.iter().position(|ok| !ok) {
        return Some(chars[i]);
    }
    let shows = chars
        .iter()
        .any(|c| !c.is_whitespace() && !invisible(*c) && !matches!(c, '\u{FE0E}' | '\u{FE0F}'));
    if shows {
        None
    } else {
        chars.first().copied()
    }
}

/// `name` without the characters [`hidden_character`] refuses (for text that arrives from
/// elsewhere, such as a WeChat profile, rather than typed into a form of ours). Linear in
/// the length of `name`.
pub fn without_hidden_characters(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let ok = allowed(&chars);
    chars
        .iter()
        .zip(ok)
        .filter_map(|(c, ok)| ok.then_some(*c))
        .collect()
}

/// The form in which names are compared for uniqueness: compatibility-normalised (NFKC) and
/// case-folded, so that full-width, styled and differently cased spellings of one name are
/// one name. (Folding is lower-casing plus the full folds lower-casing misses: ß and ẞ to
/// "ss", final sigma to sigma; NFKC has already unfolded the ligatures.)
pub fn name_key(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    // Presentation selectors change how an emoji looks, not which name it is.
    let shown = name
        .trim()
        .chars()
        .filter(|c| !matches!(c, '\u{FE0E}' | '\u{FE0F}'));
    for c in shown.nfkc().flat_map(char::to_lowercase) {
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
            "Music\u{FE0F}",
            "Mus\u{034F}ic",
            "Music 1\u{200D}2",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "\u{2800}",
            "Library\u{FE0E}",
            "Sport🏴\u{E0065}\u{E0076}\u{E0069}\u{E006C}",
            "\u{E0065}vil",
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
    fn hidden_characters_are_left_out_of_long_text_too() {
        let shy = "\u{AD}".repeat(200_000);
        // (Quadratic work would take minutes on this; a linear pass, milliseconds.)
        assert_eq!(without_hidden_characters(&shy), "");
        assert_eq!(without_hidden_characters(&format!("{shy}A{shy}")), "A");
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
        assert_eq!(name_key("❤\u{FE0F} club"), name_key("❤ club"));
    }
}
