//! Templates written in the configuration (`dedup_key = "{{ entity.host }}/{{ entity.service }}"`),
//! rendered for every alert. An operator's template must not be able to stall or bloat the path
//! every alert takes, so each render has a budget of work (minijinja's fuel) and of output size,
//! and a template that cannot render is an error the caller handles, never a panic.
//!
//! Syntax: Jinja2 as minijinja implements it (`{{ value }}`, `{% if %}`, filters such as
//! `upper`, `lower`, `default`, `truncate`, `replace`, `join`).

use serde::Serialize;

/// Work one render may do: far more than any sensible template needs, far less than a loop
/// that would hold up delivery.
pub const FUEL: u64 = 50_000;
/// Longest output a render may produce, in bytes.
pub const MAX_OUTPUT: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template does not parse (reported when the configuration is loaded).
    #[error("template does not parse: {0}")]
    Syntax(String),
    /// It parsed but could not render this input (an unknown filter, a type error...).
    #[error("template could not render: {0}")]
    Render(String),
    #[error("template used more than its budget of work ({FUEL} units)")]
    TooSlow,
    #[error("template output is longer than {MAX_OUTPUT} bytes")]
    TooLong,
}

/// A compiled template. Cheap to clone.
#[derive(Clone)]
pub struct Template {
    env: std::sync::Arc<minijinja::Environment<'static>>,
    source: String,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Template").field(&self.source).finish()
    }
}

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Template {
    /// Parses `source`; a syntax error names the position.
    pub fn compile(source: &str) -> Result<Template, TemplateError> {
        Template::build(source, minijinja::UndefinedBehavior::Chainable)
    }

    /// Like [`Template::compile`], but a value the input does not have is an error instead of
    /// empty text. For identities such as dedup keys: `host/{{ labels.pod }}` must not quietly
    /// become `host/` for every alert without that label and merge unrelated problems.
    pub fn compile_strict(source: &str) -> Result<Template, TemplateError> {
        Template::build(source, minijinja::UndefinedBehavior::Strict)
    }

    fn build(
        source: &str,
        undefined: minijinja::UndefinedBehavior,
    ) -> Result<Template, TemplateError> {
        let mut env = minijinja::Environment::new();
        env.set_fuel(Some(FUEL));
        // An undefined value renders as empty, as operators expect from `{{ labels.team }}` on
        // alerts without that label; `| default("x")` still works.
        env.set_undefined_behavior(undefined);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.add_template_owned("t", source.to_owned())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(Template {
            env: std::sync::Arc::new(env),
            source: source.to_owned(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders with `context` (anything serialisable: usually the alert as JSON).
    pub fn render<C: Serialize>(&self, context: &C) -> Result<String, TemplateError> {
        let t = self
            .env
            .get_template("t")
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        let out = t
            .render(minijinja::value::Serde(context))
            .map_err(|e| match e.kind() {
                minijinja::ErrorKind::OutOfFuel => TemplateError::TooSlow,
                _ => TemplateError::Render(describe(&e)),
            })?;
        if out.len() > MAX_OUTPUT {
            return Err(TemplateError::TooLong);
        }
        Ok(out)
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.line() {
        Some(line) => format!(
            "{} (line {line} of the template)",
            e.detail().unwrap_or(&e.kind().to_string())
        ),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_alert_fields_and_filters() {
        let t =
            Template::compile("{{ entity.host | upper }}/{{ entity.service }}{{ labels.team }}")
                .unwrap();
        let out = t
            .render(&json!({"entity": {"host": "db1", "service": "disk"}}))
            .unwrap();
        assert_eq!(out, "DB1/disk", "an absent label renders empty");
        let t = Template::compile("{{ labels.team | default('ops') }}").unwrap();
        assert_eq!(t.render(&json!({})).unwrap(), "ops");
    }

    #[test]
    fn strict_templates_refuse_missing_values() {
        let t = Template::compile_strict("web/{{ labels.pod }}").unwrap();
        assert!(matches!(
            t.render(&json!({"labels": {}})),
            Err(TemplateError::Render(_))
        ));
        assert_eq!(
            t.render(&json!({"labels": {"pod": "p1"}})).unwrap(),
            "web/p1"
        );
        let t = Template::compile_strict("{{ labels.pod | default('none') }}").unwrap();
        assert_eq!(
            t.render(&json!({"labels": {}})).unwrap(),
            "none",
            "an explicit default still works"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_compile_time() {
        let err = Template::compile("{{ entity.host ").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err}");
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let slow = Template::compile(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        )
        .unwrap();
        assert_eq!(slow.render(&json!({})), Err(TemplateError::TooSlow));
        let long = Template::compile("{{ s * 2000 }}").unwrap();
        let s = "0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(long.render(&json!({"s": s})), Err(TemplateError::TooLong));
    }
}
