//! Matching concrete request paths against OpenAPI path templates.

/// One segment of a path template such as `/incidents/{id}/notes`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// A path template of one spec, already carrying that spec's server prefix.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Index of the spec the template belongs to.
    pub(crate) spec: usize,
    /// The template exactly as it is written in the spec's `paths` (without prefix),
    /// because that is the key needed to find the operation again.
    pub(crate) template: String,
    segments: Vec<Segment>,
}

impl Route {
    pub(crate) fn new(spec: usize, prefix: &str, template: &str) -> Route {
        let full = format!("{prefix}{template}");
        let segments = split(&full)
            .map(|s| {
                if s.len() >= 2 && s.starts_with('{') && s.ends_with('}') {
                    Segment::Param
                } else {
                    Segment::Literal(s.to_owned())
                }
            })
            .collect();
        Route {
            spec,
            template: template.to_owned(),
            segments,
        }
    }

    /// Returns how specific the match is, or `None` when the path does not match.
    ///
    /// The score is compared lexicographically so that a literal segment beats a
    /// parameter at the first position where two candidate templates differ; this is
    /// what makes `/users/me` win over `/users/{id}` and `/incidents/count` over
    /// `/incidents/{id}`, whatever order the spec lists them in.
    fn score(&self, concrete: &[&str]) -> Option<Vec<bool>> {
        if concrete.len() != self.segments.len() {
            return None;
        }
        let mut score = Vec::with_capacity(concrete.len());
        for (segment, actual) in self.segments.iter().zip(concrete) {
            match segment {
                Segment::Literal(lit) => {
                    if lit != actual && *lit != percent_decode(actual) {
                        return None;
                    }
                    score.push(true);
                }
                Segment::Param => {
                    // An empty segment (`/incidents//notes`) is not a value for `{id}`.
                    if actual.is_empty() {
                        return None;
                    }
                    score.push(false);
                }
            }
        }
        Some(score)
    }
}

/// Strips the query string and fragment: the contract is keyed on the path only.
pub(crate) fn path_only(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.strip_prefix('/').unwrap_or(path).split('/')
}

/// Finds the most specific route matching `path` (query string already removed).
pub(crate) fn find<'r>(routes: &'r [Route], path: &str) -> Option<&'r Route> {
    if !path.starts_with('/') {
        return None;
    }
    let concrete: Vec<&str> = split(path).collect();
    routes
        .iter()
        .filter_map(|route| route.score(&concrete).map(|score| (score, route)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, route)| route)
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16)),
                bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a JSON pointer for use as a URI fragment: path templates put `{` and `}`
/// into pointers, and those are not allowed unescaped in a URI.
pub(crate) fn fragment_encode(pointer: &str) -> String {
    let mut out = String::with_capacity(pointer.len());
    for byte in pointer.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte);
        if keep {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Escapes one reference token of a JSON pointer (RFC 6901).
pub(crate) fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        vec![
            Route::new(0, "", "/users/{id}"),
            Route::new(0, "", "/users/me"),
            Route::new(0, "", "/incidents/{id}"),
            Route::new(0, "", "/incidents/count"),
            Route::new(0, "", "/incidents/{id}/notes"),
            Route::new(1, "/v2", "/enqueue"),
        ]
    }

    #[test]
    fn literal_beats_param_regardless_of_order() {
        let r = routes();
        assert_eq!(find(&r, "/users/me").unwrap().template, "/users/me");
        assert_eq!(find(&r, "/users/PXYZ").unwrap().template, "/users/{id}");
        assert_eq!(
            find(&r, "/incidents/count").unwrap().template,
            "/incidents/count"
        );
        assert_eq!(
            find(&r, "/incidents/P1/notes").unwrap().template,
            "/incidents/{id}/notes"
        );
    }

    #[test]
    fn prefix_and_mismatches() {
        let r = routes();
        assert_eq!(find(&r, "/v2/enqueue").unwrap().spec, 1);
        assert!(find(&r, "/enqueue").is_none());
        assert!(find(&r, "/incidents//notes").is_none());
        assert!(find(&r, "/incidents/P1/notes/extra").is_none());
        assert!(find(&r, "incidents").is_none());
        assert!(find(&r, "").is_none());
    }

    #[test]
    fn query_and_encoding() {
        assert_eq!(path_only("/a/b?x=1#f"), "/a/b");
        assert_eq!(path_only("/a#f?x"), "/a");
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
        assert_eq!(fragment_encode("/paths/~1a~1{id}"), "/paths/~1a~1%7Bid%7D");
        assert_eq!(pointer_token("a/b~c"), "a~1b~0c");
    }
}
