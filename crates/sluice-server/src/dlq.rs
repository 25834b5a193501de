//! `/v1/dlq`: the tenant's dead-letter queue, to inspect, page through, delete and purge.
//! Entries are written by the pipeline; replaying them is the pipeline's job too.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_store::{DeadLetter, MAX_DLQ_PAGE};
use sluice_types::{GuestFailure, ModuleRef, Uplink};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller, QueryPairs};
use crate::handlers::blocking;

/// Entries in a page when the query gives no `limit`.
pub const DEFAULT_DLQ_PAGE: u32 = 100;

/// A dead letter as the API shows it: the tenant is the caller's, so it is left out.
#[derive(Debug, Serialize)]
pub struct DeadLetterView {
    id: i64,
    binding: String,
    /// The message as the source received it; `payload` is hex.
    uplink: Uplink,
    failure: GuestFailure,
    failure_kind: String,
    module: ModuleRef,
    attempts: u32,
    created_at_ms: u64,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(d: DeadLetter) -> Self {
        Self {
            id: d.id,
            binding: d.binding,
            uplink: d.uplink,
            failure: d.failure,
            failure_kind: d.failure_kind,
            module: d.module,
            attempts: d.attempts,
            created_at_ms: d.created_at_ms,
        }
    }
}

/// The query of `GET /v1/dlq`.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    binding: Option<String>,
    after_id: Option<i64>,
    limit: u32,
}

impl ListQuery {
    /// Reads `binding`, `after_id` and `limit`; anything else, a repeated parameter or a bad
    /// value is a 400 naming the parameter.
    fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut binding = None;
        let mut after_id = None;
        let mut limit = None;
        for (name, value) in pairs {
            let repeated = || ApiError::bad_field(&name, format!("`{name}` is given twice"));
            match name.as_str() {
                "binding" => {
                    if value.is_empty() {
                        return Err(ApiError::bad_field(
                            "binding",
                            "`binding` must be a binding name; leave it out for every binding",
                        ));
                    }
                    if binding.replace(value).is_some() {
                        return Err(repeated());
                    }
                }
                "after_id" => {
                    let id = value
                        .parse::<i64>()
                        .ok()
                        .filter(|id| *id >= 0)
                        .ok_or_else(|| {
                            ApiError::bad_field(
                                "after_id",
                                format!(
                                    "`after_id` must be an entry id (an integer ≥ 0), not `{value}`"
                                ),
                            )
                        })?;
                    if after_id.replace(id).is_some() {
                        return Err(repeated());
                    }
                }
                "limit" => {
                    let n = value
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_DLQ_PAGE).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad_field(
                                "limit",
                                format!(
                                    "`limit` must be an integer from 1 to {MAX_DLQ_PAGE}, not `{value}`"
                                ),
                            )
                        })?;
                    if limit.replace(n).is_some() {
                        return Err(repeated());
                    }
                }
                _ => {
                    return Err(ApiError::bad_field(
                        &name,
                        format!(
                            "unknown query parameter `{name}`; expected `binding`, `after_id` or `limit`"
                        ),
                    ));
                }
            }
        }
        Ok(ListQuery {
            binding,
            after_id,
            limit: limit.unwrap_or(DEFAULT_DLQ_PAGE),
        })
    }
}

/// What `GET /v1/dlq` answers.
#[derive(Debug, Serialize)]
pub struct DeadLetterPage {
    /// The page, oldest first.
    dead_letters: Vec<DeadLetterView>,
    /// How many entries the queue holds for the query's binding (or for all), every page.
    depth: u64,
    /// The `after_id` of the next page, or `null` when this page is the last.
    next_after_id: Option<i64>,
}

/// `GET /v1/dlq?binding=&after_id=&limit=`: one page of the tenant's dead letters, oldest
/// first, with the queue's depth.
pub async fn list_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<DeadLetterPage>, ApiError> {
    let query = ListQuery::parse(pairs)?;
    blocking(move || {
        let binding = query.binding.as_deref();
        let entries = state
            .store
            .dlq_list(&caller.tenant, binding, query.limit, query.after_id)?;
        let depth = state.store.dlq_depth(&caller.tenant, binding)?;
        let next_after_id = if entries.len() == query.limit as usize {
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Json(DeadLetterPage {
            dead_letters: entries.into_iter().map(DeadLetterView::from).collect(),
            depth,
            next_after_id,
        }))
    })
    .await
}

/// The entry id of a path, or 400.
fn entry_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_field("id", format!("`{text}` is not a dead-letter id")))
}

/// `GET /v1/dlq/{id}`: one entry.
pub async fn get_dead_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<DeadLetterView>, ApiError> {
    let id = entry_id(&id)?;
    blocking(move || {
        let entry = state
            .store
            .dlq_get(&caller.tenant, id)?
            .ok_or_else(|| ApiError::dead_letter_not_found(id))?;
        Ok(Json(DeadLetterView::from(entry)))
    })
    .await
}

/// `DELETE /v1/dlq/{id}`: drops one entry without replaying it.
pub async fn delete_dead_letter(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_write()?;
    let id = entry_id(&id)?;
    blocking(move || {
        state.store.dlq_delete(&caller.tenant, id)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

/// Body of `POST /v1/dlq/purge`: `{}` purges every binding's entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    #[serde(default)]
    binding: Option<String>,
}

/// `POST /v1/dlq/purge`: drops the entries of one binding, or all of the tenant's.
pub async fn purge_dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<PurgeRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_write()?;
    if body.binding.as_deref() == Some("") {
        return Err(ApiError::bad_field(
            "binding",
            "`binding` must be a binding name; leave it out to purge every binding",
        ));
    }
    blocking(move || {
        let purged = state
            .store
            .dlq_purge(&caller.tenant, body.binding.as_deref())?;
        Ok(Json(serde_json::json!({ "purged": purged })))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<ListQuery, ApiError> {
        ListQuery::parse(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_empty_query_lists_every_binding_from_the_start() {
        assert_eq!(
            parse(&[]).expect("empty"),
            ListQuery {
                binding: None,
                after_id: None,
                limit: DEFAULT_DLQ_PAGE
            }
        );
    }

    #[test]
    fn bad_values_name_their_parameter() {
        let over = (MAX_DLQ_PAGE + 1).to_string();
        for (pairs, field) in [
            (&[("limit", "0")][..], "limit"),
            (&[("limit", over.as_str())][..], "limit"),
            (&[("limit", "ten")][..], "limit"),
            (&[("after_id", "-1")][..], "after_id"),
            (&[("after_id", "x")][..], "after_id"),
            (&[("binding", "")][..], "binding"),
            (&[("limit", "5"), ("limit", "6")][..], "limit"),
            (&[("bindng", "uplinks")][..], "bindng"),
        ] {
            let err = parse(pairs).expect_err("bad query");
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{pairs:?}");
            assert_eq!(err.field.as_deref(), Some(field), "{pairs:?}");
        }
    }

    #[test]
    fn the_largest_page_is_accepted() {
        let max = MAX_DLQ_PAGE.to_string();
        let q = parse(&[("limit", &max), ("after_id", "0"), ("binding", "up")]).expect("ok");
        assert_eq!(q.limit, MAX_DLQ_PAGE);
        assert_eq!(q.after_id, Some(0));
        assert_eq!(q.binding.as_deref(), Some("up"));
    }
}
