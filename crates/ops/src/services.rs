//! Services: find one by id or name, list them.

use futures::{Stream, TryStreamExt};
use pagerduty::RestClient;
use pagerduty::rest::Service;

use crate::error::{Kind, OpError};

/// The service `name_or_id` names: an id first, then an exact name, then a name ignoring case.
/// Several services of that name are refused with their ids, so that the caller picks one.
pub async fn resolve(rest: &RestClient, name_or_id: &str) -> Result<Service, OpError> {
    let wanted = name_or_id.trim();
    if wanted.is_empty() {
        return Err(OpError::field("service", "service: give an id or a name"));
    }
    let looks_like_id = wanted.len() <= 20 && wanted.chars().all(|c| c.is_ascii_alphanumeric());
    if looks_like_id {
        match rest.get_service(wanted).await {
            Ok(s) => return Ok(s),
            Err(e) => {
                let err = OpError::from_pagerduty(&format!("reading service {wanted}"), &e);
                if err.kind != Kind::NotFound {
                    return Err(err);
                }
            }
        }
    }
    let candidates: Vec<Service> = rest
        .services(Some(wanted))
        .try_collect()
        .await
        .map_err(|e| OpError::from_pagerduty("listing services", &e))?;
    let exact: Vec<&Service> = candidates.iter().filter(|s| s.name == wanted).collect();
    let matches = if exact.is_empty() {
        candidates
            .iter()
            .filter(|s| s.name.eq_ignore_ascii_case(wanted))
            .collect()
    } else {
        exact
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(OpError {
            field: Some("service".into()),
            ..OpError::not_found(format!(
                "service: no service with the id or name {wanted:?}"
            ))
        }),
        many => Err(OpError::field(
            "service",
            format!(
                "service: {} services are named {wanted:?} ({}); give the id",
                many.len(),
                many.iter()
                    .map(|s| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Every service, or those whose name contains `query`.
pub fn list(
    rest: &RestClient,
    query: Option<&str>,
) -> impl Stream<Item = Result<Service, OpError>> + Send + 'static + use<> {
    rest.services(query)
        .map_err(|e| OpError::from_pagerduty("listing services", &e))
}
