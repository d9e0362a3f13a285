//! The languages code runs in, with the aliases the HopX agent accepts.

use serde::{Deserialize, Serialize};

/// A language a run can ask for. On the wire a request names it as a string (any alias,
/// any case), so an unknown name can be answered with a clear error listing what a template
/// offers instead of a JSON parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Python,
    Javascript,
    Bash,
}

impl Language {
    pub const ALL: [Language; 3] = [Self::Python, Self::Javascript, Self::Bash];

    /// The canonical wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Python => "python",
            Self::Javascript => "javascript",
            Self::Bash => "bash",
        }
    }

    /// Every name a request may use (any case), with the language it means.
    pub const NAMES: [(&'static str, Language); 10] = [
        ("python", Self::Python),
        ("python3", Self::Python),
        ("py", Self::Python),
        ("javascript", Self::Javascript),
        ("js", Self::Javascript),
        ("node", Self::Javascript),
        ("nodejs", Self::Javascript),
        ("bash", Self::Bash),
        ("sh", Self::Bash),
        ("shell", Self::Bash),
    ];

    /// Reads a requested name or alias (`py`, `node`, `sh`, ...), ignoring case.
    pub fn parse(requested: &str) -> Option<Self> {
        Self::NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(requested))
            .map(|(_, language)| *language)
    }

    /// The schema of a requested name: one of [`Self::NAMES`].
    #[cfg(feature = "openapi")]
    pub fn name_schema() -> utoipa::openapi::Object {
        use utoipa::openapi::{schema::Type, ObjectBuilder};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Self::NAMES.iter().map(|(name, _)| *name)))
            .description(Some(
                "A language name or alias (any case); absent means python",
            ))
            .build()
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_map_to_their_canonical_language() {
        assert_eq!(Language::parse("PY"), Some(Language::Python));
        assert_eq!(Language::parse("nodejs"), Some(Language::Javascript));
        assert_eq!(Language::parse("sh"), Some(Language::Bash));
        assert_eq!(Language::parse("ruby"), None);
        for l in Language::ALL {
            assert_eq!(Language::parse(l.as_str()), Some(l));
            assert_eq!(serde_json::to_string(&l).unwrap(), format!("\"{l}\""));
        }
    }
}
