//! Field checks shared by the RPCs.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// `value` has `min..=max` characters and no control characters.
pub fn length(field: &str, value: &str, min: usize, max: usize) -> Result<()> {
    let chars = value.chars().count();
    if chars < min {
        return Err(Error::field(
            field,
            if min == 1 {
                "is required".to_owned()
            } else {
                format!("must be at least {min} characters")
            },
        ));
    }
    if chars > max {
        return Err(Error::field(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::field(field, "must not contain control characters"));
    }
    Ok(())
}

/// An id: 1 to 255 characters, no surrounding spaces.
pub fn identifier(field: &str, value: &str) -> Result<()> {
    length(field, value, 1, 255)?;
    if value.trim() != value {
        return Err(Error::field(field, "must not start or end with spaces"));
    }
    Ok(())
}

/// A login: 1 to 100 characters without spaces.
pub fn login(field: &str, value: &str) -> Result<()> {
    length(field, value, 1, 100)?;
    if value.chars().any(char::is_whitespace) {
        return Err(Error::field(field, "must not contain spaces"));
    }
    Ok(())
}

/// An email address: `local@domain`, at most 254 characters (RFC 5321's path limit).
pub fn email(field: &str, value: &str) -> Result<()> {
    length(field, value, 1, 254)?;
    let valid = value.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
    }) && !value.chars().any(char::is_whitespace)
        && value.matches('@').count() == 1;
    if !valid {
        return Err(Error::field(
            field,
            "must be an email address such as alice@example.com",
        ));
    }
    Ok(())
}

/// Profile attributes: at most 64, names like identifiers (`costCenter`), values up to 1024
/// characters.
pub fn profile(field: &str, attributes: &BTreeMap<String, String>) -> Result<()> {
    if attributes.len() > 64 {
        return Err(Error::field(field, "at most 64 attributes"));
    }
    for (name, value) in attributes {
        let valid_name = name.len() <= 64
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            return Err(Error::field(
                format!("{field}.{name}"),
                "attribute names are letters, digits and _, starting with a letter",
            ));
        }
        length(&format!("{field}.{name}"), value, 0, 1024)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert!(email("e", "alice@example.com").is_ok());
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "alice@example",
            "a@b@c.com",
            "a b@c.com",
            "alice@.com",
        ] {
            assert!(email("e", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn profile_names_are_identifiers() {
        let ok: BTreeMap<_, _> = [("costCenter".to_owned(), "42".to_owned())].into();
        assert!(profile("profile", &ok).is_ok());
        let bad: BTreeMap<_, _> = [("1st".to_owned(), "x".to_owned())].into();
        assert!(matches!(profile("profile", &bad), Err(Error::InvalidField { field, .. }) if field == "profile.1st"));
    }
}
