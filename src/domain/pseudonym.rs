//! Seller pseudonyms: the lower-case hex HMAC-SHA256, under a community key that never reaches
//! the gateway, of a seller identifier in one normal form, so that platforms and customs can
//! match a seller across messages without handing each other the raw value. Any party can
//! compute them in any language from the rules here (the README lists test vectors):
//!
//! - e-mail: leading and trailing whitespace trimmed, lower-cased; one `@` with something on
//!   each side, and no whitespace or control character left;
//! - phone: E.164, `+` and 8 to 15 digits, the first not 0: `(0)` wherever it appears (the
//!   national trunk prefix of `+31 (0)20 …`), spaces, `-`, `.`, `(` and `)` are dropped and a
//!   leading `00` becomes `+`; a number without its country code is refused;
//! - payment account (an IBAN): whitespace dropped, ASCII letters upper-cased; 15 to 34 ASCII
//!   letters and digits, two letters then two digits, and the ISO 13616 check (mod 97) must
//!   hold.
//!
//! The key is 32 bytes, written in its file as 64 hex digits on one line.

use crate::pb::PseudonymType;
use hmac::{Hmac, Mac};

/// The normal form of `value` as an identifier of `kind`, or why it has none.
pub fn normalise(kind: PseudonymType, value: &str) -> Result<String, String> {
    match kind {
        PseudonymType::Email => {
            let email = value.trim().to_lowercase();
            let one_at = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            });
            if one_at && !email.chars().any(|c| c.is_whitespace() || c.is_control()) {
                Ok(email)
            } else {
                Err(format!(
                    "{value:?} is not an e-mail address (one @ with something on each side, no spaces)"
                ))
            }
        }
        PseudonymType::Phone => {
            let compact: String = value
                .trim()
                .replace("(0)", "")
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
                .collect();
            let digits = compact
                .strip_prefix('+')
                .or_else(|| compact.strip_prefix("00"))
                .ok_or_else(|| {
                    format!("{value:?} has no country code: write it as +<country><number>")
                })?;
            if (8..=15).contains(&digits.len())
                && digits.bytes().all(|b| b.is_ascii_digit())
                && !digits.starts_with('0')
            {
                Ok(format!("+{digits}"))
            } else {
                Err(format!(
                    "{value:?} is not an E.164 number (+ and 8 to 15 digits, the first not 0)"
                ))
            }
        }
        PseudonymType::PaymentAccount => {
            let iban: String = value
                .chars()
                .filter(|c| !c.is_whitespace())
                .map(|c| c.to_ascii_uppercase())
                .collect();
            let shaped = (15..=34).contains(&iban.len())
                && iban.bytes().all(|b| b.is_ascii_alphanumeric())
                && iban.bytes().take(2).all(|b| b.is_ascii_uppercase())
                && iban.bytes().skip(2).take(2).all(|b| b.is_ascii_digit());
            if !shaped {
                return Err(format!(
                    "{value:?} is not an IBAN (two letters, two check digits, then 11 to 30 letters and digits)"
                ));
            }
            if iban_remainder(&iban) != 1 {
                return Err(format!(
                    "{value:?} fails the IBAN check digits (ISO 13616, mod 97)"
                ));
            }
            Ok(iban)
        }
        PseudonymType::Unspecified => Err("the identifier's type is required".into()),
    }
}

/// The pseudonym of `value` as an identifier of `kind` under the 32-byte community `key`.
pub fn pseudonym(key: &[u8; 32], kind: PseudonymType, value: &str) -> Result<String, String> {
    let normal = normalise(kind, value)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(normal.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The community key from its file's text: 64 hex digits on one line (either case; whitespace
/// around the line, such as its line feed, is ignored). A refusal says what is wrong with the
/// file without repeating any of it.
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    const FORMAT: &str = "the key file must hold the community key as 64 hex digits on one line";
    let line = text.trim();
    let lines = line.lines().count();
    if lines > 1 {
        return Err(format!("{FORMAT}; it holds {lines} lines"));
    }
    if let Some(at) = line.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format!(
            "{FORMAT}; character {} of the line is not a hex digit",
            at + 1
        ));
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(line, &mut key)
        .map_err(|_| format!("{FORMAT}; it holds {} hex digits", line.len()))?;
    Ok(key)
}

/// The IBAN's remainder mod 97 with its first four characters moved to the end and letters
/// as 10 to 35.
fn iban_remainder(iban: &str) -> u32 {
    let rearranged = iban[4..].bytes().chain(iban[..4].bytes());
    rearranged.fold(0u32, |acc, b| {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        if value >= 10 {
            (acc * 100 + value) % 97
        } else {
            (acc * 10 + value) % 97
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [0x42; 32];

    #[test]
    fn normal_forms() {
        use PseudonymType::*;
        assert_eq!(
            normalise(Email, "  Seller.One@Example.COM ").unwrap(),
            "seller.one@example.com"
        );
        assert_eq!(
            normalise(Phone, "+31 (0)20-555.0101").unwrap(),
            "+31205550101"
        );
        assert_eq!(
            normalise(Phone, "+0 20 555").unwrap_err(),
            "\"+0 20 555\" is not an E.164 number (+ and 8 to 15 digits, the first not 0)"
        );
        assert_eq!(
            normalise(Phone, "0031 20 555 0101").unwrap(),
            "+31205550101"
        );
        assert_eq!(normalise(Phone, "+31 20 555 0101").unwrap(), "+31205550101");
        assert!(normalise(Phone, "020 555 0101")
            .unwrap_err()
            .contains("no country code"));
        assert_eq!(
            normalise(PaymentAccount, "nl91 abna 0417 1643 00").unwrap(),
            "NL91ABNA0417164300"
        );
        assert!(normalise(PaymentAccount, "NL92ABNA0417164300")
            .unwrap_err()
            .contains("check digits"));
        assert!(normalise(Email, "no-at-sign").is_err());
        assert!(normalise(Email, "seller one@example.com")
            .unwrap_err()
            .contains("not an e-mail address"));
        // Only ASCII letters are upper-cased: "ß" does not become the "SS" of a valid IBAN.
        assert_eq!(
            normalise(PaymentAccount, "gb77 ssbk 6016 1331 9268 19").unwrap(),
            "GB77SSBK60161331926819"
        );
        assert!(normalise(PaymentAccount, "GB77ßBK60161331926819")
            .unwrap_err()
            .contains("is not an IBAN"));
    }

    /// The README's test vectors.
    #[test]
    fn published_vectors() {
        use PseudonymType::*;
        for (kind, value, expected) in [
            (
                Email,
                "seller.one@example.com",
                "454a0f07d461f29b7825b1802ae97a333a681043b5383221d543f752f687c77f",
            ),
            (
                Phone,
                "+31205550101",
                "f8d584c3dcb0cc52138dd1b6bb0e6e866698f02bf7ee9b3b91c1267944f271d6",
            ),
            (
                PaymentAccount,
                "NL91ABNA0417164300",
                "2268f7fd95a12e150079c20e9d15f532d9d955654dcfdd45922ef622b961b158",
            ),
        ] {
            assert_eq!(pseudonym(&KEY, kind, value).unwrap(), expected, "{value}");
        }
    }

    #[test]
    fn the_same_seller_written_differently_has_one_pseudonym() {
        use PseudonymType::*;
        assert_eq!(
            pseudonym(&KEY, Email, "Seller.One@Example.com").unwrap(),
            pseudonym(&KEY, Email, "seller.one@example.com ").unwrap()
        );
        assert_ne!(
            pseudonym(&KEY, Email, "seller.one@example.com").unwrap(),
            pseudonym(&[0x43; 32], Email, "seller.one@example.com").unwrap()
        );
    }

    #[test]
    fn keys_are_64_hex_digits() {
        assert_eq!(parse_key(&format!("{}\n", "42".repeat(32))).unwrap(), KEY);
        assert_eq!(parse_key(&"42".repeat(32).to_uppercase()).unwrap(), KEY);
        assert_eq!(
            parse_key(&format!("\r\n {}\r\n", "42".repeat(32))).unwrap(),
            KEY
        );
        let error = |text: &str| parse_key(text).unwrap_err();
        let format = "the key file must hold the community key as 64 hex digits on one line";
        assert_eq!(error("42"), format!("{format}; it holds 2 hex digits"));
        assert_eq!(error(""), format!("{format}; it holds 0 hex digits"));
        assert_eq!(
            error(&"42".repeat(33)),
            format!("{format}; it holds 66 hex digits")
        );
        assert_eq!(
            error(&format!("{}\n{}\n", "42".repeat(32), "42".repeat(32))),
            format!("{format}; it holds 2 lines")
        );
        assert_eq!(
            error(&format!("42g{}", "2".repeat(61))),
            format!("{format}; character 3 of the line is not a hex digit")
        );
    }
}
