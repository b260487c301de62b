//! Identifiers that reach us from clients: validated once, then carried as types.

use std::fmt;

/// A sale id: `[A-Za-z0-9_-]{1,64}`. It becomes part of DynamoDB keys, so `#` and anything
/// else outside the set is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SaleId(String);

/// A user id: 1–255 characters, no control characters, no leading or trailing whitespace.
/// Opaque and case-sensitive; in JWT mode it is the token's `sub`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("saleId must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'")]
    BadSaleId,
    #[error("userId must not be empty")]
    EmptyUserId,
    #[error("userId must be at most 255 characters")]
    LongUserId,
    #[error("userId must not contain control characters")]
    ControlCharInUserId,
    #[error("userId must not start or end with whitespace")]
    UserIdWhitespace,
}

impl SaleId {
    pub(crate) const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok { Ok(Self(text.to_owned())) } else { Err(IdError::BadSaleId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl UserId {
    /// OpenID Connect caps `sub` at 255 ASCII characters; the same bound takes every identity
    /// provider's subject and keeps a purchase key far below DynamoDB's 2,048-byte limit.
    pub(crate) const MAX_CHARS: usize = 255;

    pub fn parse(text: &str) -> Result<Self, IdError> {
        if text.is_empty() {
            return Err(IdError::EmptyUserId);
        }
        if text.chars().count() > Self::MAX_CHARS {
            return Err(IdError::LongUserId);
        }
        if text.chars().any(char::is_control) {
            return Err(IdError::ControlCharInUserId);
        }
        if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
            return Err(IdError::UserIdWhitespace);
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `text` is an order id as the API writes them: a ULID in its canonical form, 26
/// characters of upper-case Crockford base32 (no I, L, O or U) whose first one is 0–7 (a ULID is
/// 128 bits). Lower case, the letters Crockford reads as digits, and values past 128 bits are not
/// order ids, so that one order has one id.
pub fn is_order_id(text: &str) -> bool {
    match ulid::Ulid::from_string(text) {
        Ok(id) => id.to_string() == text,
        Err(_) => false,
    }
}

impl fmt::Display for SaleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sale_ids_are_a_safe_key_alphabet() {
        for ok in ["demo", "A-b_9", &"x".repeat(64)] {
            assert!(SaleId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a#b", "a/b", "..", "a b", "é", &"x".repeat(65), "SALE#x"] {
            assert_eq!(SaleId::parse(bad), Err(IdError::BadSaleId), "{bad}");
        }
    }

    #[test]
    fn order_ids_are_canonical_ulids() {
        let id = ulid::Ulid::from_parts(1_700_000_000_000, 42).to_string();
        assert!(is_order_id(&id), "{id}");
        assert!(is_order_id("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"));
        for bad in [
            "",
            "01ARZ3NDEKTSV4RRFFQ69G5FA",   // 25
            "01ARZ3NDEKTSV4RRFFQ69G5FAVX", // 27
            "01arz3ndektsv4rrffq69g5fav",  // lower case
            "01ARZ3NDEKTSV4RRFFQ69G5FAI",  // I
            "01ARZ3NDEKTSV4RRFFQ69G5FAO",  // O
            "01ARZ3NDEKTSV4RRFFQ69G5FAU",  // U
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",  // past 128 bits
        ] {
            assert!(!is_order_id(bad), "{bad}");
        }
    }

    #[test]
    fn user_ids_are_opaque_but_bounded() {
        assert!(UserId::parse("alice").is_ok());
        assert!(UserId::parse("Alice").unwrap() != UserId::parse("alice").unwrap());
        assert!(UserId::parse("名前 with space inside").is_ok());
        assert!(UserId::parse(&"é".repeat(255)).is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::EmptyUserId));
        assert_eq!(UserId::parse(&"a".repeat(256)), Err(IdError::LongUserId));
        assert_eq!(UserId::parse("a\u{0}b"), Err(IdError::ControlCharInUserId));
        assert_eq!(UserId::parse("a\nb"), Err(IdError::ControlCharInUserId));
        assert_eq!(UserId::parse(" alice"), Err(IdError::UserIdWhitespace));
        assert_eq!(UserId::parse("alice\u{3000}"), Err(IdError::UserIdWhitespace));
    }
}
