//! Checks on the standard vocabularies ipex speaks: ISO 3166-1 countries, ISO 4217 currencies,
//! HS codes, GTIN, UN/LOCODE, UN/ECE Rec 20 units, UPU S10 item ids, decimals, URLs, digests,
//! dates, media types and participant ids.
//!
//! Every check is a pure function. Those that can fail in more than one way return
//! `Result<(), String>` whose error is a short sentence fit to show a user next to the field
//! path; membership tests that read better as a question return `bool`.

/// The officially assigned ISO 3166-1 alpha-2 country codes (249), sorted.
///
/// User-assigned codes (`XK` for Kosovo, `XI` for Northern Ireland in EU customs and VAT use)
/// and exceptionally reserved ones (`EU`, `UK`, `EL`) are not in the standard's assigned list
/// and are refused.
pub const COUNTRIES: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The active ISO 4217 alphabetic currency codes (list one), sorted, including the fund codes
/// (`BOV`, `CHE`, `CHW`, `CLF`, `COU`, `MXV`, `USN`, `UYI`, `UYW`) and the `X` codes for
/// precious metals, SDR, bond-market units, testing (`XTS`) and "no currency" (`XXX`).
///
/// Withdrawn codes are refused: `ANG` (replaced by `XCG` in 2025), `HRK` (2023), `SLL` (2024),
/// `ZWL` (replaced by `ZWG` in 2024), `CUC` (2021) and the older ones.
pub const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DJF",
    "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP",
    "GMD", "GNF", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR",
    "ISK", "JMD", "JOD", "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
    "LAK", "LBP", "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB",
    "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN",
    "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH",
    "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED", "VES", "VND", "VUV", "WST", "XAF",
    "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD", "XCG", "XDR", "XOF", "XPD", "XPF", "XPT",
    "XSU", "XTS", "XUA", "XXX", "YER", "ZAR", "ZMW", "ZWG",
];

/// Common UN/ECE Recommendation 20 unit codes, for documentation and help texts only:
/// [`unit_code`] accepts any code of the right syntax, since Rec 20 has some two thousand.
pub const COMMON_UNITS: &[(&str, &str)] = &[
    ("H87", "piece"),
    ("C62", "one (unit)"),
    ("NAR", "number of articles"),
    ("PCE", "piece (legacy code, superseded by H87)"),
    ("PR", "pair"),
    ("SET", "set"),
    ("KGM", "kilogram"),
    ("GRM", "gram"),
    ("TNE", "tonne"),
    ("LTR", "litre"),
    ("MLT", "millilitre"),
    ("MTR", "metre"),
    ("MTK", "square metre"),
    ("MTQ", "cubic metre"),
];

/// Largest number of characters of a URL we accept.
pub const URL_MAX_CHARS: usize = 2048;

/// The value as it should appear inside an error message: quoted, escaped, and cut short so
/// that a hostile megabyte does not end up in a log line.
fn quoted(value: &str) -> String {
    const SHOWN: usize = 40;
    if value.chars().count() <= SHOWN {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(SHOWN).collect();
        format!("{:?}…", head)
    }
}

fn all_digits(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_digit())
}

/// True when `code` is an officially assigned ISO 3166-1 alpha-2 code, in upper case.
pub fn is_country(code: &str) -> bool {
    COUNTRIES.binary_search(&code).is_ok()
}

/// Checks an ISO 3166-1 alpha-2 country code (upper case, officially assigned), e.g. "NL".
pub fn country(code: &str) -> Result<(), String> {
    if is_country(code) {
        Ok(())
    } else {
        Err(format!(
            "{} is not an ISO 3166-1 alpha-2 country code",
            quoted(code)
        ))
    }
}

/// True when `code` is an active ISO 4217 alphabetic currency code, in upper case.
pub fn is_currency(code: &str) -> bool {
    CURRENCIES.binary_search(&code).is_ok()
}

/// Checks an active ISO 4217 alphabetic currency code, e.g. "EUR".
pub fn currency(code: &str) -> Result<(), String> {
    if is_currency(code) {
        Ok(())
    } else {
        Err(format!("{} is not an ISO 4217 currency code", quoted(code)))
    }
}

/// Checks a Harmonized System code: 6 to 10 ASCII digits (the six-digit HS subheading, possibly
/// extended by a national or CN/TARIC subdivision), e.g. "640399" or "6403999890".
pub fn hs_code(code: &str) -> Result<(), String> {
    if (6..=10).contains(&code.len()) && all_digits(code) {
        Ok(())
    } else {
        Err("must be 6 to 10 digits".to_string())
    }
}

/// The HS chapter of a valid HS code: its first two digits ("64" for "640399"). For a string
/// shorter than two bytes or not starting with two ASCII characters, the whole string.
pub fn hs_chapter(code: &str) -> &str {
    code.get(..2).unwrap_or(code)
}

/// Checks a GTIN-8, GTIN-12 (UPC-A), GTIN-13 (EAN-13) or GTIN-14: digits only, one of those
/// lengths, and a valid GS1 mod-10 check digit.
pub fn gtin(code: &str) -> Result<(), String> {
    if !matches!(code.len(), 8 | 12 | 13 | 14) || !all_digits(code) {
        return Err("must be a GTIN of 8, 12, 13 or 14 digits".to_string());
    }
    let digits: Vec<u32> = code.bytes().map(|b| u32::from(b - b'0')).collect();
    let (body, check) = digits.split_at(digits.len() - 1);
    // From the right, not counting the check digit, weights are 3, 1, 3, 1, ...
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    let expected = (10 - sum % 10) % 10;
    if check[0] == expected {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid GTIN: the check digit should be {expected}",
            quoted(code)
        ))
    }
}

/// Checks a UN/LOCODE written without the space: 5 characters, an ISO 3166-1 alpha-2 country
/// followed by 3 characters of `[A-Z2-9]`, e.g. "NLRTM" (Rotterdam), "NLAMS" (Amsterdam).
pub fn unlocode(code: &str) -> Result<(), String> {
    let location_ok = code.len() == 5
        && code.is_ascii()
        && code[2..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'9').contains(&b));
    if !location_ok {
        return Err(format!(
            "{} is not a UN/LOCODE: it must be a country code and 3 characters of A-Z, 2-9",
            quoted(code)
        ));
    }
    if !is_country(&code[..2]) {
        return Err(format!(
            "{} is not a UN/LOCODE: {} is not an ISO 3166-1 alpha-2 country code",
            quoted(code),
            quoted(&code[..2])
        ));
    }
    Ok(())
}

/// Checks the syntax of a UN/ECE Recommendation 20 unit code: 2 or 3 characters of `[A-Z0-9]`.
/// See [`COMMON_UNITS`] for the usual ones.
pub fn unit_code(code: &str) -> Result<(), String> {
    if (2..=3).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(format!(
            "{} is not a UN/ECE Rec 20 unit code such as \"H87\" or \"KGM\"",
            quoted(code)
        ))
    }
}

/// Checks a UPU S10 item id: 2 letters, 8 serial digits, a check digit and the 2-letter
/// country of the issuing postal operator, e.g. "RR123456785CN".
pub fn upu_s10(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let shape = b.len() == 13
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..11].iter().all(u8::is_ascii_digit)
        && b[11..].iter().all(u8::is_ascii_uppercase);
    if !shape {
        return Err(format!(
            "{} is not a UPU S10 item id such as \"RR123456785CN\"",
            quoted(id)
        ));
    }
    const WEIGHTS: [u32; 8] = [8, 6, 4, 2, 3, 5, 9, 7];
    let sum: u32 = b[2..10]
        .iter()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let expected = match 11 - sum % 11 {
        10 => 0,
        11 => 5,
        c => c,
    };
    if u32::from(b[10] - b'0') == expected {
        Ok(())
    } else {
        Err(format!(
            "{} is not a valid UPU S10 item id: the check digit should be {expected}",
            quoted(id)
        ))
    }
}

/// Checks a decimal amount or quantity: 1 to 15 digits, optionally a point and 1 to 4
/// fraction digits (`^\d{1,15}(\.\d{1,4})?$`); no sign, no exponent. With `positive`, the
/// value must also be greater than zero.
pub fn decimal(value: &str, positive: bool) -> Result<(), String> {
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) => (int, Some(frac)),
        None => (value, None),
    };
    let int_ok = (1..=15).contains(&int.len()) && all_digits(int);
    let frac_ok = frac.is_none_or(|f| (1..=4).contains(&f.len()) && all_digits(f));
    if !int_ok || !frac_ok {
        return Err(format!(
            "{} is not a decimal number such as \"12\" or \"129.90\" (at most 15 digits and 4 decimals)",
            quoted(value)
        ));
    }
    if positive && value.bytes().all(|b| b == b'0' || b == b'.') {
        return Err("must be greater than zero".to_string());
    }
    Ok(())
}

fn url_with(value: &str, https_only: bool) -> Result<(), String> {
    let wanted = if https_only { "an https" } else { "an http(s)" };
    if value.chars().count() > URL_MAX_CHARS {
        return Err(format!("a URL may have at most {URL_MAX_CHARS} characters"));
    }
    // The url crate quietly trims and percent-encodes; a URL we pass on must be exact.
    if value
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_bidi_override(c))
    {
        return Err(format!(
            "{} is not {wanted} URL: it contains a space, control or bidirectional character",
            quoted(value)
        ));
    }
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    let scheme_ok = lower.starts_with("https://") || (!https_only && lower.starts_with("http://"));
    let parsed = url::Url::parse(value).ok().filter(|_| scheme_ok);
    let Some(url) = parsed else {
        return Err(format!("{} is not {wanted} URL", quoted(value)));
    };
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "{} is not {wanted} URL: it has no host",
            quoted(value)
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "{} must not contain a user name or password",
            quoted(value)
        ));
    }
    Ok(())
}

/// Checks an absolute `http` or `https` URL with a host, at most 2048 characters, without
/// spaces, control characters or credentials.
pub fn http_url(value: &str) -> Result<(), String> {
    url_with(value, false)
}

/// Like [`http_url`], but only `https` is accepted.
pub fn https_url(value: &str) -> Result<(), String> {
    url_with(value, true)
}

/// Checks 64 lower-case hexadecimal digits: a SHA-256 digest or an HMAC-SHA256.
pub fn hex64(value: &str) -> Result<(), String> {
    if value.len() == 64
        && value
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    {
        Ok(())
    } else {
        Err("must be 64 lower-case hexadecimal digits".to_string())
    }
}

/// Checks an ISO 8601 calendar date "YYYY-MM-DD" that exists (year 0001 to 9999, leap years
/// counted), e.g. "2024-02-29" but not "2023-02-29".
pub fn date(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return Err(format!(
            "{} is not a date in the form YYYY-MM-DD",
            quoted(value)
        ));
    }
    let number = |range: std::ops::Range<usize>| -> u32 {
        b[range].iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let exists = year >= 1
        && u8::try_from(month)
            .ok()
            .and_then(|m| time::Month::try_from(m).ok())
            .is_some_and(|m| {
                // Both fit: year <= 9999 and day <= 99.
                time::Date::from_calendar_date(year as i32, m, day as u8).is_ok()
            });
    if exists {
        Ok(())
    } else {
        Err(format!("{} is not a date that exists", quoted(value)))
    }
}

/// Checks the syntax of a media type "type/subtype" (RFC 6838 restricted names, no
/// parameters), e.g. "image/jpeg", "application/pdf".
pub fn media_type(value: &str) -> Result<(), String> {
    fn restricted_name(name: &str) -> bool {
        let b = name.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b[1..].iter().all(|c| {
                c.is_ascii_alphanumeric()
                    || matches!(
                        c,
                        b'!' | b'#' | b'$' | b'&' | b'-' | b'^' | b'_' | b'.' | b'+'
                    )
            })
    }
    match value.split_once('/') {
        Some((kind, subtype)) if restricted_name(kind) && restricted_name(subtype) => Ok(()),
        _ => Err(format!(
            "{} is not a media type such as \"image/jpeg\"",
            quoted(value)
        )),
    }
}

/// Checks the syntax of a participant id: 1 to 64 characters of `[a-z0-9-]`, starting with a
/// letter or digit, e.g. "customs-nl". Whether the participant exists is not checked here.
pub fn participant_id(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a participant id: 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'",
            quoted(value)
        ))
    }
}

/// A participant's address: its id (`market-a`, a participant of this gateway) or
/// `<id>@<gateway>` (a participant of peer gateway `<gateway>`), both parts participant ids.
pub fn participant_address(value: &str) -> Result<(), String> {
    match value.split_once('@') {
        None => participant_id(value),
        Some((id, gateway)) if participant_id(id).is_ok() && participant_id(gateway).is_ok() => Ok(()),
        Some(_) => Err(format!(
            "{} is not a participant address: an id, or <id>@<gateway>, each 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'",
            quoted(value)
        )),
    }
}

/// A host name as a registry lists it (`market-a.example`), in its normal form: lower case,
/// internationalised names in their ASCII form. No scheme, port, path or IP address.
pub fn host(value: &str) -> Result<String, String> {
    let refuse = || {
        format!(
            "{} is not a host name such as \"market.example\" (no scheme, port, path or address)",
            quoted(value)
        )
    };
    if value.is_empty() || value.contains(['/', ':', '@', '?', '#']) || value.len() > 253 {
        return Err(refuse());
    }
    match url::Host::parse(value) {
        Ok(url::Host::Domain(domain)) if domain.contains('.') => Ok(domain),
        _ => Err(refuse()),
    }
}

/// Checks the syntax of a message id chosen by a sender: 1 to 128 characters of
/// `[A-Za-z0-9._:-]`, e.g. "tdn-2026-0001".
pub fn message_id(value: &str) -> Result<(), String> {
    let ok = (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{} is not a message id: 1 to 128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            quoted(value)
        ))
    }
}

/// Checks that a text has at most `max` characters (Unicode scalar values, not bytes).
pub fn max_chars(value: &str, max: usize) -> Result<(), String> {
    // Cheap exits: a char is at least one byte and at most four.
    if value.len() <= max || value.chars().count() <= max {
        Ok(())
    } else {
        Err(format!("at most {max} characters"))
    }
}

/// The Unicode bidirectional embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069): they make a text display differently from what is stored.
pub fn is_bidi_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a text a person will read (a name, a description, an explanation): no control
/// character but tab and line feed (C0, DEL and C1 are refused, carriage return too), and no
/// bidirectional override, so that what is displayed is what is stored.
pub fn plain_text(value: &str) -> Result<(), String> {
    let refused = value
        .chars()
        .find(|&c| (c.is_control() && c != '\t' && c != '\n') || is_bidi_override(c));
    match refused {
        None => Ok(()),
        Some(c) if is_bidi_override(c) => Err(format!(
            "must not contain the bidirectional control character U+{:04X}",
            u32::from(c)
        )),
        Some(c) => Err(format!(
            "must not contain the control character U+{:04X}",
            u32::from(c)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_refuses_controls_and_bidi_overrides() {
        assert!(plain_text("Lucky Star\tTrading\nCo., Ltd. — 深圳").is_ok());
        assert_eq!(
            plain_text("evil\u{1b}[2J").unwrap_err(),
            "must not contain the control character U+001B"
        );
        assert_eq!(
            plain_text("line\r\n").unwrap_err(),
            "must not contain the control character U+000D"
        );
        assert!(plain_text("\u{7f}").is_err());
        assert!(plain_text("\u{85}").is_err());
        for c in ['\u{202A}', '\u{202E}', '\u{2066}', '\u{2069}'] {
            assert_eq!(
                plain_text(&format!("Nike{c}ekiN")).unwrap_err(),
                format!(
                    "must not contain the bidirectional control character U+{:04X}",
                    u32::from(c)
                )
            );
        }
        // Marks that do not override the direction stay allowed.
        assert!(plain_text("\u{200E}\u{200F}").is_ok());
        assert!(http_url("https://market-a.example/\u{202E}gpj.exe").is_err());
    }

    fn sorted_unique(list: &[&str]) -> bool {
        list.windows(2).all(|w| w[0] < w[1])
    }

    #[test]
    fn lists_are_sorted_and_complete() {
        assert!(sorted_unique(COUNTRIES));
        assert_eq!(COUNTRIES.len(), crate::pb::limits::MAX_TERRITORIAL_SCOPE);
        assert_eq!(COUNTRIES.len(), 249);
        assert!(COUNTRIES.iter().all(|c| c.len() == 2));
        assert!(sorted_unique(CURRENCIES));
        assert!(CURRENCIES.iter().all(|c| c.len() == 3));
        for (code, _) in COMMON_UNITS {
            assert!(unit_code(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn countries() {
        for good in ["NL", "FR", "BE", "IE", "CN", "US", "AX", "SS", "ZW", "AD"] {
            assert!(country(good).is_ok(), "{good}");
        }
        for bad in [
            "XX", "nl", "Nl", "EU", "UK", "EL", "XK", "NLD", "N", "", " NL",
        ] {
            assert!(country(bad).is_err(), "{bad}");
        }
        assert_eq!(
            country("XX").unwrap_err(),
            "\"XX\" is not an ISO 3166-1 alpha-2 country code"
        );
    }

    #[test]
    fn currencies() {
        for good in [
            "EUR", "USD", "CNY", "GBP", "CHF", "XCG", "ZWG", "SLE", "VES",
        ] {
            assert!(currency(good).is_ok(), "{good}");
        }
        for bad in ["eur", "EU", "EURO", "HRK", "ANG", "ZWL", "SLL", "ABC", ""] {
            assert!(currency(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hs_codes() {
        for good in ["640399", "42022100", "6403999890", "000000"] {
            assert!(hs_code(good).is_ok(), "{good}");
        }
        for bad in [
            "6403",
            "64039",
            "64039911111",
            "6403.99",
            "64039a",
            "",
            "６４０３９９",
        ] {
            assert!(hs_code(bad).is_err(), "{bad}");
        }
        assert_eq!(hs_chapter("640399"), "64");
        assert_eq!(hs_chapter("4202210000"), "42");
        assert_eq!(hs_chapter("4"), "4");
    }

    #[test]
    fn gtins() {
        for good in [
            "4006381333931",
            "96385074",
            "036000291452",
            "10614141000415",
            "5901234123457",
        ] {
            assert!(gtin(good).is_ok(), "{good}");
        }
        for bad in [
            "4006381333932",
            "96385075",
            "400638133393",
            "123456789",
            "40063813339a1",
            "",
        ] {
            assert!(gtin(bad).is_err(), "{bad}");
        }
        assert!(gtin("4006381333932").unwrap_err().contains("should be 1"));
    }

    #[test]
    fn unlocodes() {
        for good in ["NLRTM", "NLAMS", "FRCDG", "BEBRU", "CNSZX", "DE2AB"] {
            assert!(unlocode(good).is_ok(), "{good}");
        }
        for bad in [
            "XXRTM", "nlrtm", "NLRT", "NLRTMX", "NL RTM", "NLR1M", "NLR0M", "NLRé",
        ] {
            assert!(unlocode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unit_codes() {
        for good in ["H87", "KGM", "PR", "C62", "4G"] {
            assert!(unit_code(good).is_ok(), "{good}");
        }
        for bad in ["kgm", "K", "KGMS", "", "K-G"] {
            assert!(unit_code(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn upu_item_ids() {
        for good in ["RR123456785CN", "EE000000005NL", "CP000000080FR"] {
            assert!(upu_s10(good).is_ok(), "{good}");
        }
        for bad in [
            "RR123456784CN",
            "RR12345678CN",
            "rr123456785CN",
            "R1123456785CN",
            "",
        ] {
            assert!(upu_s10(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn decimals() {
        for good in ["0", "12", "129.90", "3.5", "999999999999999.9999", "0.0001"] {
            assert!(decimal(good, false).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-1",
            "+1",
            "1.",
            ".5",
            "1.23456",
            "1e3",
            "1,5",
            "1000000000000000",
            " 1",
            "1.2.3",
        ] {
            assert!(decimal(bad, false).is_err(), "{bad}");
        }
        assert!(decimal("0", false).is_ok());
        assert_eq!(
            decimal("0.00", true).unwrap_err(),
            "must be greater than zero"
        );
        assert!(decimal("0.01", true).is_ok());
    }

    #[test]
    fn urls() {
        for good in [
            "https://market-a.example/listing/123",
            "http://market-a.example/l?id=1&x=%20",
            "HTTPS://Example.com",
        ] {
            assert!(http_url(good).is_ok(), "{good}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        for bad in [
            "ftp://example.com/x",
            "https://",
            "https:example.com",
            "example.com/listing",
            " https://example.com",
            "https://exa mple.com",
            "https://user:pw@example.com/",
            "mailto:a@example.com",
            "",
            long.as_str(),
        ] {
            assert!(http_url(bad).is_err(), "{bad}");
        }
        assert!(https_url("https://evidence.example/e/1.jpg").is_ok());
        assert!(https_url("http://evidence.example/e/1.jpg").is_err());
    }

    #[test]
    fn hex_digests() {
        let good = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert!(hex64(good).is_ok());
        assert!(hex64(&good.to_uppercase()).is_err());
        assert!(hex64(&good[1..]).is_err());
        assert!(hex64(&format!("{good}0")).is_err());
        assert!(hex64(&good.replace('e', "g")).is_err());
    }

    #[test]
    fn dates() {
        for good in [
            "2026-11-24",
            "2024-02-29",
            "2000-02-29",
            "0001-01-01",
            "9999-12-31",
        ] {
            assert!(date(good).is_ok(), "{good}");
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2026-13-01",
            "2026-00-10",
            "2026-04-31",
            "2026-1-5",
            "26-11-24",
            "2026/11/24",
            "2026-11-24T00:00:00Z",
            "0000-01-01",
            "",
        ] {
            assert!(date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn media_types() {
        for good in [
            "image/jpeg",
            "application/pdf",
            "application/vnd.ms-excel",
            "image/svg+xml",
        ] {
            assert!(media_type(good).is_ok(), "{good}");
        }
        for bad in [
            "image",
            "image/",
            "/jpeg",
            "image/jpeg; q=1",
            "image/jp eg",
            "a/b/c",
            "",
        ] {
            assert!(media_type(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn participant_ids() {
        for good in ["customs-nl", "market-a", "3pl", "a"] {
            assert!(participant_id(good).is_ok(), "{good}");
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "-customs",
            "Customs-NL",
            "customs_nl",
            "customs nl",
            long.as_str(),
        ] {
            assert!(participant_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_ids() {
        for good in ["tdn-2026-0001", "A.b_c:d-1"] {
            assert!(message_id(good).is_ok(), "{good}");
        }
        let long = "a".repeat(129);
        for bad in ["", "a b", "a/b", "é", long.as_str()] {
            assert!(message_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn text_lengths() {
        assert!(max_chars("", 0).is_ok());
        assert!(max_chars("abc", 3).is_ok());
        assert!(max_chars("abcd", 3).is_err());
        // Five characters, ten bytes: counted as characters.
        assert!(max_chars("ééééé", 5).is_ok());
        assert!(max_chars("ééééé", 4).is_err());
        assert_eq!(max_chars("abc", 2).unwrap_err(), "at most 2 characters");
    }
}
