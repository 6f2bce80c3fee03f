//! One OpenAPI document for everything a server answers.
//!
//! Each component that serves HTTP describes its own routes in its own document (the collector
//! here, the SQL API and the schema registry in their crates), so that each crate's tests can
//! hold its document to its router. `tributary serve` answers all of them on one listener, so
//! `/openapi.json` must describe all of them: [`merge`] folds the other documents into the
//! collector's and refuses anything that would make the result wrong — a path described twice,
//! two different components under one name, or a `$ref`, security scheme or operation id that
//! does not hold in the result.

use serde_json::{Map, Value};

/// Why documents could not be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A document is not JSON, or not an OpenAPI object.
    #[error("OpenAPI document {index} is not a JSON object with `paths`: {message}")]
    Invalid {
        /// Position of the document (0 is the base).
        index: usize,
        /// What is wrong with it.
        message: String,
    },
    /// Two documents describe the same path.
    #[error("the path {path} is described twice (document {index} again)")]
    DuplicatePath {
        /// The path.
        path: String,
        /// Position of the document that described it again.
        index: usize,
    },
    /// Two documents give different definitions under one component name.
    #[error("components/{section}/{name} differs in document {index}; rename one of them")]
    ConflictingComponent {
        /// The components section (`schemas`, `responses`, …).
        section: String,
        /// The component's name.
        name: String,
        /// Position of the document whose definition differs.
        index: usize,
    },
    /// The merged document does not hold together.
    #[error("the merged OpenAPI document is inconsistent: {}", problems.join("; "))]
    Inconsistent {
        /// Each problem: a reference that leads nowhere, a repeated operation id, …
        problems: Vec<String>,
    },
}

/// `base` with the paths, tags and components of each of `parts` added, as JSON text.
///
/// The base's `openapi`, `info` and `servers` stay; each part's `info.description` is added to
/// the base's as a paragraph. A component may appear in several documents only with the same
/// definition (a shared security scheme, say).
pub fn merge(base: &str, parts: &[&str]) -> Result<String, MergeError> {
    let mut merged = parse(base, 0)?;
    for (offset, part) in parts.iter().enumerate() {
        let index = offset + 1;
        let part = parse(part, index)?;
        add_paths(&mut merged, &part, index)?;
        add_components(&mut merged, &part, index)?;
        add_tags(&mut merged, &part);
        add_description(&mut merged, &part);
    }
    let problems = problems(&merged);
    if !problems.is_empty() {
        return Err(MergeError::Inconsistent { problems });
    }
    serde_json::to_string_pretty(&merged).map_err(|error| MergeError::Invalid {
        index: 0,
        message: error.to_string(),
    })
}

/// What is wrong with a complete document: `$ref`s that lead nowhere, operation ids used
/// twice, operations without one, and security requirements naming no declared scheme.
pub fn problems(document: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refs = Vec::new();
    collect_refs(document, &mut refs);
    for reference in refs {
        let resolves = reference
            .strip_prefix('#')
            .is_some_and(|pointer| document.pointer(pointer).is_some());
        if !resolves {
            problems.push(format!("$ref {reference} leads nowhere"));
        }
    }
    let schemes = document.pointer("/components/securitySchemes");
    let mut operation_ids: Vec<(String, String)> = Vec::new();
    for (path, item) in document["paths"].as_object().into_iter().flatten() {
        for (method, operation) in item.as_object().into_iter().flatten() {
            let at = format!("{method} {path}");
            match operation["operationId"].as_str() {
                Some(id) => match operation_ids.iter().find(|(other, _)| other == id) {
                    Some((_, first)) => {
                        problems.push(format!("operationId {id} is used by {first} and {at}"));
                    }
                    None => operation_ids.push((id.to_string(), at.clone())),
                },
                None => problems.push(format!("{at} has no operationId")),
            }
            let requirements = operation["security"].as_array().into_iter().flatten();
            for name in requirements
                .filter_map(Value::as_object)
                .flat_map(Map::keys)
            {
                if schemes.and_then(|schemes| schemes.get(name)).is_none() {
                    problems.push(format!("{at} names the undeclared security scheme {name}"));
                }
            }
        }
    }
    problems
}

fn parse(text: &str, index: usize) -> Result<Value, MergeError> {
    let invalid = |message: String| MergeError::Invalid { index, message };
    let document: Value = serde_json::from_str(text).map_err(|error| invalid(error.to_string()))?;
    if !document["paths"].is_object() {
        return Err(invalid("no `paths` object".into()));
    }
    Ok(document)
}

/// The object at `key` of the base document, created empty when absent.
fn object_at<'a>(
    merged: &'a mut Value,
    key: &str,
) -> Result<&'a mut Map<String, Value>, MergeError> {
    let invalid = |message: String| MergeError::Invalid { index: 0, message };
    let Value::Object(document) = merged else {
        return Err(invalid("not a JSON object".into()));
    };
    document
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| invalid(format!("`{key}` is not an object")))
}

fn add_paths(merged: &mut Value, part: &Value, index: usize) -> Result<(), MergeError> {
    let paths = object_at(merged, "paths")?;
    for (path, item) in part["paths"].as_object().into_iter().flatten() {
        if paths.contains_key(path) {
            return Err(MergeError::DuplicatePath {
                path: path.clone(),
                index,
            });
        }
        paths.insert(path.clone(), item.clone());
    }
    Ok(())
}

fn add_components(merged: &mut Value, part: &Value, index: usize) -> Result<(), MergeError> {
    let components = object_at(merged, "components")?;
    for (section, entries) in part["components"].as_object().into_iter().flatten() {
        let target = components
            .entry(section.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(target) = target else {
            return Err(MergeError::Invalid {
                index: 0,
                message: format!("components/{section} is not an object"),
            });
        };
        for (name, definition) in entries.as_object().into_iter().flatten() {
            match target.get(name) {
                Some(existing) if existing != definition => {
                    return Err(MergeError::ConflictingComponent {
                        section: section.clone(),
                        name: name.clone(),
                        index,
                    });
                }
                Some(_) => {}
                None => {
                    target.insert(name.clone(), definition.clone());
                }
            }
        }
    }
    Ok(())
}

fn add_tags(merged: &mut Value, part: &Value) {
    let Some(new_tags) = part["tags"].as_array() else {
        return;
    };
    if !merged["tags"].is_array() {
        merged["tags"] = Value::Array(Vec::new());
    }
    if let Value::Array(tags) = &mut merged["tags"] {
        for tag in new_tags {
            let named = |existing: &Value| existing["name"] == tag["name"];
            if !tags.iter().any(named) {
                tags.push(tag.clone());
            }
        }
    }
}

fn add_description(merged: &mut Value, part: &Value) {
    let Some(added) = part["info"]["description"].as_str() else {
        return;
    };
    let description = match merged["info"]["description"].as_str() {
        Some(existing) => format!("{existing}\n\n{added}"),
        None => added.to_string(),
    };
    if merged["info"].is_object() {
        merged["info"]["description"] = Value::String(description);
    }
}

/// Every `$ref` in `value`, in document order.
pub(super) fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get("$ref") {
                refs.push(reference.clone());
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn document(paths: Value, components: Value) -> String {
        json!({
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1", "description": "part"},
            "tags": [{"name": "x"}],
            "paths": paths,
            "components": components,
        })
        .to_string()
    }

    fn operation(id: &str, schema: &str) -> Value {
        json!({"post": {
            "operationId": id,
            "security": [{"key": []}],
            "responses": {"200": {"description": "ok", "content": {"application/json": {
                "schema": {"$ref": format!("#/components/schemas/{schema}")}
            }}}}
        }})
    }

    fn key_scheme() -> Value {
        json!({"type": "http", "scheme": "bearer"})
    }

    #[test]
    fn paths_components_tags_and_descriptions_are_added() {
        let base = document(
            json!({"/a": operation("a", "A")}),
            json!({"securitySchemes": {"key": key_scheme()}, "schemas": {"A": {"type": "object"}}}),
        );
        let part = document(
            json!({"/b": operation("b", "B")}),
            json!({"securitySchemes": {"key": key_scheme()}, "schemas": {"B": {"type": "string"}}}),
        );
        let merged: Value = serde_json::from_str(&merge(&base, &[&part]).unwrap()).unwrap();
        assert!(merged["paths"]["/a"].is_object());
        assert!(merged["paths"]["/b"].is_object());
        assert_eq!(merged["components"]["schemas"]["B"]["type"], "string");
        assert_eq!(merged["tags"].as_array().unwrap().len(), 1, "tag x once");
        assert_eq!(merged["info"]["description"], "part\n\npart");
        assert!(problems(&merged).is_empty());
    }

    #[test]
    fn a_path_described_twice_is_refused() {
        let base = document(json!({"/a": operation("a", "A")}), json!({}));
        let part = document(json!({"/a": operation("a2", "A")}), json!({}));
        let error = merge(&base, &[&part]).unwrap_err();
        assert!(
            matches!(&error, MergeError::DuplicatePath { path, index: 1 } if path == "/a"),
            "{error}"
        );
    }

    #[test]
    fn two_definitions_under_one_name_are_refused() {
        let base = document(json!({}), json!({"schemas": {"A": {"type": "object"}}}));
        let part = document(json!({}), json!({"schemas": {"A": {"type": "string"}}}));
        let error = merge(&base, &[&part]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "components/schemas/A differs in document 1; rename one of them"
        );
    }

    #[test]
    fn dangling_refs_repeated_ids_and_unknown_schemes_are_named() {
        let base = document(
            json!({"/a": operation("same", "A")}),
            json!({"schemas": {"A": {}}}),
        );
        let part = document(json!({"/b": operation("same", "Missing")}), json!({}));
        let Err(MergeError::Inconsistent { problems }) = merge(&base, &[&part]) else {
            panic!("an inconsistent merge was accepted");
        };
        let text = problems.join("\n");
        assert!(
            text.contains("$ref #/components/schemas/Missing leads nowhere"),
            "{text}"
        );
        assert!(
            text.contains("operationId same is used by post /a and post /b"),
            "{text}"
        );
        assert!(
            text.contains("post /a names the undeclared security scheme key"),
            "{text}"
        );
    }

    #[test]
    fn a_part_that_is_not_a_document_is_named() {
        let base = document(json!({}), json!({}));
        let error = merge(&base, &["[1, 2]"]).unwrap_err();
        assert!(
            matches!(error, MergeError::Invalid { index: 1, .. }),
            "{error}"
        );
        let error = merge(&base, &["{"]).unwrap_err();
        assert!(
            matches!(error, MergeError::Invalid { index: 1, .. }),
            "{error}"
        );
    }
}
