//! A small template engine for the Markdown reports (bin/templates/), so
//! that their prose lives in Markdown files and the code supplies numbers,
//! table rows and yes/no decisions only.
//!
//! Syntax (a subset of Mustache, without lists or escaping):
//!
//! - `{{name}}`: a value, inserted as is. A line holding nothing but a
//!   value tag disappears (newline included) when the value is empty.
//! - `{{#flag}}...{{/flag}}`: kept when `flag` is set, dropped when it is
//!   cleared; `{{^flag}}...{{/flag}}` the other way round. Sections nest.
//! - `{{! comment }}`: dropped. A line that starts with `{{!` and ends with
//!   `}}` is a comment as a whole (it may mention tags).
//! - A section or comment tag alone on its line takes the line (and its
//!   newline) with it, so sections can wrap whole paragraphs.
//!
//! Names are `[a-z0-9_]+`. Rendering fails, naming the template, on a
//! placeholder left unfilled in the rendered text, a value or flag the
//! template does not use, a section whose flag is not given, or a name
//! given twice; parsing fails on an unclosed tag or section.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Result};

#[derive(Debug)]
enum Node {
    Text(String),
    /// A value; `line` when the tag stood alone on its line (then the
    /// line's newline follows the value, and an empty value drops both).
    Value {
        name: String,
        line: Option<&'static str>,
    },
    Section {
        name: String,
        inverted: bool,
        body: Vec<Node>,
    },
}

/// A parsed template.
#[derive(Debug)]
pub(crate) struct Template {
    name: &'static str,
    nodes: Vec<Node>,
    values: BTreeSet<String>,
    sections: BTreeSet<String>,
}

/// Values and flags for [`Template::render`].
#[derive(Debug, Default)]
pub(crate) struct Vars {
    values: BTreeMap<String, String>,
    flags: BTreeMap<String, bool>,
    twice: Vec<String>,
}

impl Vars {
    /// Give `{{name}}` its value.
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        if self.values.insert(name.to_string(), value.into()).is_some() {
            self.twice.push(name.to_string());
        }
        self
    }

    /// Keep `{{#name}}` sections (`on`) or `{{^name}}` sections (not `on`).
    pub(crate) fn flag(&mut self, name: &str, on: bool) -> &mut Self {
        if self.flags.insert(name.to_string(), on).is_some() {
            self.twice.push(name.to_string());
        }
        self
    }
}

enum Tag<'a> {
    Value(&'a str),
    Open(&'a str, bool),
    Close(&'a str),
    Comment,
}

fn tag(inner: &str) -> Result<Tag<'_>> {
    let (kind, name) = match inner.chars().next() {
        Some('!') => return Ok(Tag::Comment),
        Some(c @ ('#' | '^' | '/')) => (Some(c), &inner[1..]),
        _ => (None, inner),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        bail!("bad tag {{{{{inner}}}}} (names are [a-z0-9_]+)");
    }
    Ok(match kind {
        Some('#') => Tag::Open(name, false),
        Some('^') => Tag::Open(name, true),
        Some(_) => Tag::Close(name),
        None => Tag::Value(name),
    })
}

/// Append text, merged with the text before it.
fn push_text(nodes: &mut Vec<Node>, s: &str) {
    match nodes.last_mut() {
        _ if s.is_empty() => {}
        Some(Node::Text(t)) => t.push_str(s),
        _ => nodes.push(Node::Text(s.to_string())),
    }
}

impl Template {
    /// Parse `text`; `name` identifies the template in errors.
    pub(crate) fn parse(name: &'static str, text: &'static str) -> Result<Template> {
        Self::parse_inner(name, text).map_err(|e| anyhow!("template {name}: {e}"))
    }

    fn parse_inner(name: &'static str, text: &'static str) -> Result<Template> {
        // The sections open at this point: (name, inverted, the nodes before it).
        let mut stack: Vec<(String, bool, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let (mut values, mut sections) = (BTreeSet::new(), BTreeSet::new());
        for (i, line) in text.split_inclusive('\n').enumerate() {
            let err = |e: String| anyhow!("line {}: {e}", i + 1);
            let (body, newline) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
            if body.starts_with("{{!") && body.ends_with("}}") {
                continue;
            }
            // A tag alone on its line: a section or comment tag takes the
            // newline with it, a value keeps it (unless empty).
            let mut newline_after = newline;
            let lone = body.strip_prefix("{{").and_then(|b| b.strip_suffix("}}")).filter(|b| !b.contains("{{") && !b.contains("}}"));
            if let Some(inner) = lone {
                if let Tag::Value(v) = tag(inner).map_err(|e| err(e.to_string()))? {
                    values.insert(v.to_string());
                    nodes.push(Node::Value { name: v.to_string(), line: Some(newline) });
                    continue;
                }
                newline_after = "";
            }
            let mut rest = body;
            loop {
                let at = rest.find("{{").unwrap_or(rest.len());
                if rest[..at].contains("}}") {
                    return Err(err("`}}` without `{{`".into()));
                }
                push_text(&mut nodes, &rest[..at]);
                if at == rest.len() {
                    break;
                }
                let end = rest[at..].find("}}").ok_or_else(|| err("unclosed tag".into()))? + at;
                match tag(&rest[at + 2..end]).map_err(|e| err(e.to_string()))? {
                    Tag::Value(v) => {
                        values.insert(v.to_string());
                        nodes.push(Node::Value { name: v.to_string(), line: None });
                    }
                    Tag::Open(s, inverted) => {
                        sections.insert(s.to_string());
                        stack.push((s.to_string(), inverted, std::mem::take(&mut nodes)));
                    }
                    Tag::Close(s) => {
                        let (open, inverted, before) = stack.pop().ok_or_else(|| err(format!("{{{{/{s}}}}} closes no section")))?;
                        if open != s {
                            return Err(err(format!("{{{{/{s}}}}} closes the section {open}")));
                        }
                        let body = std::mem::replace(&mut nodes, before);
                        nodes.push(Node::Section { name: open, inverted, body });
                    }
                    Tag::Comment => {}
                }
                rest = &rest[end + 2..];
            }
            push_text(&mut nodes, newline_after);
        }
        if let Some((open, ..)) = stack.last() {
            bail!("section {open} is not closed");
        }
        Ok(Template { name, nodes, values, sections })
    }

    /// The text with `vars` filled in (see the module docs for what fails).
    pub(crate) fn render(&self, vars: &Vars) -> Result<String> {
        let fail = |what: String| Err(anyhow!("template {}: {what}", self.name));
        if let Some(n) = vars.twice.first() {
            return fail(format!("{n} given twice"));
        }
        if let Some(n) = vars.values.keys().find(|n| !self.values.contains(*n)) {
            return fail(format!("the value {n} has no placeholder {{{{{n}}}}}"));
        }
        if let Some(n) = vars.flags.keys().find(|n| !self.sections.contains(*n)) {
            return fail(format!("the flag {n} has no section"));
        }
        if let Some(n) = self.sections.iter().find(|n| !vars.flags.contains_key(*n)) {
            return fail(format!("the section {n} has no flag"));
        }
        let mut out = String::new();
        self.walk(&self.nodes, vars, &mut out)?;
        Ok(out)
    }

    fn walk(&self, nodes: &[Node], vars: &Vars, out: &mut String) -> Result<()> {
        for n in nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Value { name, line } => {
                    let v =
                        vars.values.get(name).ok_or_else(|| anyhow!("template {}: placeholder {{{{{name}}}}} left unfilled", self.name))?;
                    out.push_str(v);
                    if let Some(newline) = line.filter(|_| !v.is_empty()) {
                        out.push_str(newline);
                    }
                }
                Node::Section { name, inverted, body } => {
                    if vars.flags[name] != *inverted {
                        self.walk(body, vars, out)?;
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "{{! a comment line, {{even}} with tags }}\n# {{title}}\n\n{{rows}}\n{{#note}}\n\nNote: {{what}}.\n{{/note}}\n\nTransport: {{#tls}}TLS{{/tls}}{{^tls}}TCP{{/tls}}.\n";

    fn vars(rows: &str, note: bool, tls: bool) -> Vars {
        let mut v = Vars::default();
        v.set("title", "T").set("rows", rows).set("what", "w").flag("note", note).flag("tls", tls);
        v
    }

    #[test]
    fn sections_and_lone_tags_take_their_lines() {
        let t = Template::parse("t", T).unwrap();
        assert_eq!(t.render(&vars("a\nb", true, true)).unwrap(), "# T\n\na\nb\n\nNote: w.\n\nTransport: TLS.\n");
        assert_eq!(t.render(&vars("", false, false)).unwrap(), "# T\n\n\nTransport: TCP.\n");
    }

    #[test]
    fn an_unfilled_placeholder_fails() {
        let t = Template::parse("t", T).unwrap();
        let mut v = Vars::default();
        v.set("title", "T").set("rows", "").flag("note", true).flag("tls", true);
        let e = t.render(&v).unwrap_err().to_string();
        assert!(e.contains("{{what}} left unfilled") && e.contains("template t"), "{e}");
        // Unfilled inside a dropped section is fine.
        let mut v = Vars::default();
        v.set("title", "T").set("rows", "").flag("note", false).flag("tls", true);
        assert!(t.render(&v).is_ok());
    }

    #[test]
    fn a_value_or_flag_the_template_does_not_use_fails() {
        let t = Template::parse("t", T).unwrap();
        let mut v = vars("", true, true);
        v.set("nowhere", "x");
        assert!(t.render(&v).unwrap_err().to_string().contains("the value nowhere has no placeholder"));
        let mut v = vars("", true, true);
        v.flag("nothing", true);
        assert!(t.render(&v).unwrap_err().to_string().contains("the flag nothing has no section"));
        let mut v = Vars::default();
        v.set("title", "T").set("rows", "").set("what", "w").flag("tls", true);
        assert!(t.render(&v).unwrap_err().to_string().contains("the section note has no flag"));
        let mut v = vars("", true, true);
        v.set("title", "again");
        assert!(t.render(&v).unwrap_err().to_string().contains("title given twice"));
    }

    #[test]
    fn malformed_templates_fail_to_parse() {
        for (text, why) in [
            ("{{#a}}\nx\n", "section a is not closed"),
            ("{{#a}}x{{/b}}", "closes the section a"),
            ("x{{/a}}", "closes no section"),
            ("x {{name\n", "unclosed tag"),
            ("x {{Name}}", "bad tag"),
            ("x }} y", "without"),
        ] {
            let e = Template::parse("bad", text).unwrap_err().to_string();
            assert!(e.contains(why) && e.starts_with("template bad: "), "{text:?}: {e}");
        }
    }
}
