//! The `Authorization` request header and the `WWW-Authenticate` challenge
//! (RFC 6750, RFC 9728).

/// The token of an `Authorization: Bearer <token>` header value (scheme
/// case-insensitive); `None` for other schemes and for empty tokens or
/// tokens containing whitespace.
pub fn bearer_from_header(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_start_matches([' ', '\t']);
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return None;
    }
    Some(token)
}

/// A `WWW-Authenticate` value: `Bearer resource_metadata="…"` plus optional
/// `scope="…"` and `error="…", error_description="…"`. Values are quoted
/// and escaped; control and non-ASCII characters become `?`, so the result
/// is always a valid header value.
pub fn www_authenticate(resource_metadata_url: &str, scope: Option<&str>, error: Option<(&str, &str)>) -> String {
    let mut out = String::from("Bearer resource_metadata=");
    push_quoted(&mut out, resource_metadata_url);
    if let Some(scope) = scope {
        out.push_str(", scope=");
        push_quoted(&mut out, scope);
    }
    if let Some((code, description)) = error {
        out.push_str(", error=");
        push_quoted(&mut out, code);
        if !description.is_empty() {
            out.push_str(", error_description=");
            push_quoted(&mut out, description);
        }
    }
    out
}

fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn www_authenticate_format_and_escaping() {
        let url = "https://ops.example.ts.net/.well-known/oauth-protected-resource/mcp";
        assert_eq!(www_authenticate(url, None, None), format!("Bearer resource_metadata=\"{url}\""));
        assert_eq!(
            www_authenticate(url, Some("files:read files:write"), Some(("insufficient_scope", "needs files:write"))),
            format!(
                "Bearer resource_metadata=\"{url}\", scope=\"files:read files:write\", \
                 error=\"insufficient_scope\", error_description=\"needs files:write\""
            )
        );
        assert_eq!(
            www_authenticate(url, None, Some(("invalid_token", ""))),
            format!("Bearer resource_metadata=\"{url}\", error=\"invalid_token\"")
        );
        let nasty =
            www_authenticate("https://h/\"x\\", None, Some(("invalid_token", "bad \"quote\"\r\nSet-Cookie: a=b ü")));
        assert_eq!(
            nasty,
            "Bearer resource_metadata=\"https://h/\\\"x\\\\\", error=\"invalid_token\", \
             error_description=\"bad \\\"quote\\\"??Set-Cookie: a=b ?\""
        );
        assert!(hyper::header::HeaderValue::from_str(&nasty).is_ok());
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_from_header("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_from_header("bearer abc"), Some("abc"));
        assert_eq!(bearer_from_header("BEARER   abc  "), Some("abc"));
        assert_eq!(bearer_from_header("Bearer\tabc"), Some("abc"));
        assert_eq!(bearer_from_header("Bearer"), None);
        assert_eq!(bearer_from_header("Bearer "), None);
        assert_eq!(bearer_from_header("Bearer    "), None);
        assert_eq!(bearer_from_header("Bearer a b"), None);
        assert_eq!(bearer_from_header("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer_from_header("Bearerabc"), None);
        assert_eq!(bearer_from_header(""), None);
        assert_eq!(bearer_from_header("DPoP abc"), None);
    }
}
