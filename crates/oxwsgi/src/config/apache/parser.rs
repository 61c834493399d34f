//! Logical lines → a tree of directives and `<Section>`s, with the line of
//! each. Section names are matched case-insensitively (`<Location>` …
//! `</location>`); an unclosed, stray or mismatched end tag is an error
//! naming the file and line, as Apache refuses such a file too. Arguments
//! stay raw text here: `${VAR}` substitution and word splitting happen when
//! the tree is evaluated, in file order, so a `Define` applies to what
//! follows it.

use std::path::Path;

use super::lexer::{logical_lines, split_directive};
use crate::config::error::ConfigError;

/// A node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    Directive(Directive),
    Section(Section),
}

/// `Name args`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Directive {
    pub(super) name: String,
    pub(super) args: String,
    pub(super) line: usize,
}

/// `<Name args> children </Name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Section {
    pub(super) name: String,
    pub(super) args: String,
    pub(super) line: usize,
    pub(super) children: Vec<Node>,
}

/// Parses one file's text.
pub(super) fn parse(src: &str, file: &Path) -> Result<Vec<Node>, ConfigError> {
    let error = |line: usize, message: String| ConfigError::At {
        file: file.to_path_buf(),
        line,
        key: None,
        message,
    };
    // The open sections, innermost last, and the top level below them.
    let mut stack: Vec<Section> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    for line in logical_lines(src) {
        let text = line.text.as_str();
        if let Some(rest) = text.strip_prefix("</") {
            let name = rest.trim_end_matches('>').trim();
            let Some(open) = stack.pop() else {
                return Err(error(
                    line.number,
                    format!("</{name}> without a matching <{name}> section"),
                ));
            };
            if !open.name.eq_ignore_ascii_case(name) {
                return Err(error(
                    line.number,
                    format!(
                        "</{name}> closes <{}>, opened at line {}: expected </{}>",
                        open.name, open.line, open.name
                    ),
                ));
            }
            push(&mut stack, &mut top, Node::Section(open));
        } else if let Some(rest) = text.strip_prefix('<') {
            let Some(inner) = rest.strip_suffix('>') else {
                let (name, _) = split_directive(rest);
                return Err(error(
                    line.number,
                    format!("<{name} directive missing closing '>'"),
                ));
            };
            let (name, args) = split_directive(inner.trim());
            if name.is_empty() {
                return Err(error(line.number, "empty section name `<>`".into()));
            }
            stack.push(Section {
                name: name.to_string(),
                args: args.to_string(),
                line: line.number,
                children: Vec::new(),
            });
        } else {
            let (name, args) = split_directive(text);
            push(
                &mut stack,
                &mut top,
                Node::Directive(Directive {
                    name: name.to_string(),
                    args: args.to_string(),
                    line: line.number,
                }),
            );
        }
    }
    if let Some(open) = stack.pop() {
        return Err(error(
            open.line,
            format!("<{}> is never closed (no </{}>)", open.name, open.name),
        ));
    }
    Ok(top)
}

fn push(stack: &mut [Section], top: &mut Vec<Node>, node: Node) {
    match stack.last_mut() {
        Some(open) => open.children.push(node),
        None => top.push(node),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Vec<Node> {
        parse(src, Path::new("site.conf")).unwrap()
    }

    fn err(src: &str) -> String {
        parse(src, Path::new("site.conf")).unwrap_err().to_string()
    }

    fn directive(name: &str, args: &str, line: usize) -> Node {
        Node::Directive(Directive {
            name: name.into(),
            args: args.into(),
            line,
        })
    }

    #[test]
    fn nested_sections() {
        let src = "Listen 80\n<VirtualHost *:80>\n  <Location \"/a b\">\n    WSGIProcessGroup g\n  </location>\n</VirtualHost>\n";
        assert_eq!(
            ok(src),
            vec![
                directive("Listen", "80", 1),
                Node::Section(Section {
                    name: "VirtualHost".into(),
                    args: "*:80".into(),
                    line: 2,
                    children: vec![Node::Section(Section {
                        name: "Location".into(),
                        args: "\"/a b\"".into(),
                        line: 3,
                        children: vec![directive("WSGIProcessGroup", "g", 4)],
                    })],
                }),
            ]
        );
    }

    #[test]
    fn section_errors_name_the_line() {
        assert_eq!(
            err("Listen 80\n</Location>\n"),
            "site.conf:2: </Location> without a matching <Location> section"
        );
        assert_eq!(
            err("<VirtualHost *:80>\n<Location />\n</VirtualHost>\n"),
            "site.conf:3: </VirtualHost> closes <Location>, opened at line 2: expected </Location>"
        );
        assert_eq!(
            err("<VirtualHost *:80>\nListen 80\n"),
            "site.conf:1: <VirtualHost> is never closed (no </VirtualHost>)"
        );
        assert_eq!(
            err("\n<Directory /srv\n</Directory>"),
            "site.conf:2: <Directory directive missing closing '>'"
        );
    }
}
