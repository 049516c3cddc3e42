//! The field violations of one request: every field that is wrong, named by its path in
//! proto field names, so a refusal says exactly what to fix.

/// Field violations collected while validating one message, each with the field path in proto
/// field names (`envelope.seizure_notification.items[0].hs_code`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    /// `(field path, what is wrong)` in the order found.
    items: Vec<(String, String)>,
}

impl Violations {
    /// Records that `field` is wrong, and why.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.items.push((field.into(), description.into()));
    }

    /// True when nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The violations found, `(field path, description)`.
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// Moves every violation of `other` into `self`.
    pub fn append(&mut self, other: Violations) {
        self.items.extend(other.items);
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (field, description)) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {description}")?;
        }
        Ok(())
    }
}
