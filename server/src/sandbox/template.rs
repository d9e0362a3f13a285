//! The built-in templates and how each language is started.
//!
//! A template fixes what a sandbox's root contains and which languages it runs. Both share
//! the host's read-only `/usr`; they differ in the languages they offer.

use sandlot_protocol::{Language, Template, TemplateResources};

use super::isolation::CodeDelivery;

/// A built-in template.
#[derive(Debug)]
pub struct TemplateSpec {
    pub id: &'static str,
    pub name: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    pub languages: &'static [Language],
}

pub const TEMPLATES: &[TemplateSpec] = &[
    TemplateSpec {
        id: "1",
        name: "code-interpreter",
        display_name: "Code Interpreter",
        description: "Python 3, JavaScript (Node.js) and Bash",
        languages: &[Language::Python, Language::Javascript, Language::Bash],
    },
    TemplateSpec {
        id: "2",
        name: "base",
        display_name: "Base",
        description: "A minimal Linux sandbox with Bash",
        languages: &[Language::Bash],
    },
];

/// Finds a template by name or id.
pub fn find(name_or_id: &str) -> Option<&'static TemplateSpec> {
    TEMPLATES
        .iter()
        .find(|t| t.name == name_or_id || t.id == name_or_id)
}

impl TemplateSpec {
    pub fn supports(&self, language: Language) -> bool {
        self.languages.contains(&language)
    }

    pub fn to_wire(&self, memory_mb: u64, cpus: f64) -> Template {
        Template {
            id: self.id.into(),
            name: self.name.into(),
            display_name: self.display_name.into(),
            description: self.description.into(),
            category: "development".into(),
            language: self.languages[0].as_str().into(),
            features: self.languages.iter().map(|l| l.as_str().into()).collect(),
            tags: vec!["sandlot".into()],
            default_resources: Some(TemplateResources {
                vcpu: cpus.ceil() as u32,
                memory_mb,
                disk_gb: 1,
            }),
            is_active: true,
            is_public: true,
            status: "active".into(),
            object: "template".into(),
            request_id: None,
        }
    }
}

/// How to start a language: argv and how the program text reaches it.
pub fn launcher(language: Language) -> (Vec<String>, CodeDelivery) {
    let (argv, delivery): (&[&str], _) = match language {
        // -u: unbuffered, so background output shows up while the process runs. Reading the
        // program from stdin keeps the working directory on sys.path, as `python -c` does.
        Language::Python => (&["/usr/bin/python3", "-u", "-"], CodeDelivery::Stdin),
        // Node resolves the real path of a script file, which a memfd lacks; stdin works.
        Language::Javascript => (&["/usr/bin/node", "-"], CodeDelivery::Stdin),
        Language::Bash => (&["/bin/bash", "/proc/self/fd/3"], CodeDelivery::Fd3),
    };
    (argv.iter().map(|s| s.to_string()).collect(), delivery)
}
