//! Message limits: the API server refuses an Event whose note exceeds 1 KiB,
//! and a condition is read in `kubectl get`/`describe`, so both are cut short;
//! the operator's log keeps the API's full words.

/// Longest condition message, in bytes.
pub const CONDITION_MESSAGE_MAX: usize = 512;

/// Longest Event note, in bytes (the API server's limit is 1024).
pub const EVENT_NOTE_MAX: usize = 1000;

/// Marks a message that was cut.
const ELLIPSIS: &str = "…";

/// `text` at most `max` bytes long, cut on a character boundary and ending
/// with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_kept() {
        assert_eq!(cut("fine", 10), "fine");
        assert_eq!(cut("0123456789", 10), "0123456789");
    }

    #[test]
    fn long_text_is_cut_on_a_character_boundary() {
        let long = "é".repeat(600);
        let message = cut(&long, CONDITION_MESSAGE_MAX);
        assert!(message.len() <= CONDITION_MESSAGE_MAX, "{}", message.len());
        assert!(message.ends_with(ELLIPSIS));
        assert!(message.trim_end_matches(ELLIPSIS).chars().all(|c| c == 'é'));
        assert!(cut(&"x".repeat(5000), EVENT_NOTE_MAX).len() <= EVENT_NOTE_MAX);
    }
}
