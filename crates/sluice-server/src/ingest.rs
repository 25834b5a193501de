//! The message path through HTTP: ingest into a binding, the binding's recent messages, and
//! replaying dead letters. These need a running pipeline (`sluice serve`); without one they
//! answer 503.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_connectors::topic::check_device_id;
use sluice_pipeline::{Outcome, Pipeline, PipelineError};
use sluice_types::Uplink;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ApiJson, Caller};

/// Most messages one ingest request may carry.
pub const MAX_BATCH: usize = 1000;

/// Most dead letters one replay request takes.
pub const MAX_REPLAY: u32 = 10_000;

fn pipeline(state: &AppState) -> Result<Pipeline, ApiError> {
    state.pipeline.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no-pipeline",
            "this server runs the API only; messages flow in `sluice serve`",
        )
    })
}

fn pipeline_error(e: PipelineError, binding: &str) -> ApiError {
    match e {
        PipelineError::UnknownBinding { .. } => ApiError::new(
            StatusCode::NOT_FOUND,
            "binding-not-found",
            format!("no binding `{binding}`"),
        ),
        PipelineError::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "the service is shutting down; send again later",
        ),
        other => ApiError::internal(other.to_string()),
    }
}

/// Metadata as a map or as a list of pairs (the list keeps the order).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Metadata {
    Map(BTreeMap<String, String>),
    Pairs(Vec<(String, String)>),
}

/// One message of `POST /v1/bindings/{name}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestMessage {
    device_id: String,
    #[serde(default)]
    port: u16,
    #[serde(default)]
    payload_hex: Option<String>,
    #[serde(default)]
    payload_base64: Option<String>,
    #[serde(default)]
    metadata: Option<Metadata>,
    #[serde(default)]
    received_at_ms: Option<u64>,
}

/// The body of `POST /v1/bindings/{name}/messages`: one message, or `{"messages": [...]}`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IngestBody {
    /// A batch.
    Batch {
        /// The messages, at most [`MAX_BATCH`].
        messages: Vec<IngestMessage>,
    },
    /// One message.
    One(IngestMessage),
}

impl IngestMessage {
    fn into_uplink(self, at: &str) -> Result<Uplink, ApiError> {
        check_device_id(&self.device_id)
            .map_err(|m| ApiError::bad_field(format!("{at}device_id"), m))?;
        let payload = crate::handlers::parse_payload(
            self.payload_hex.as_deref(),
            self.payload_base64.as_deref(),
            at,
        )?;
        let mut uplink = Uplink::new(self.device_id, self.port, payload);
        if let Some(at) = self.received_at_ms {
            uplink.received_at_ms = at;
        }
        uplink.metadata = match self.metadata {
            None => Vec::new(),
            Some(Metadata::Map(map)) => map.into_iter().collect(),
            Some(Metadata::Pairs(pairs)) => pairs,
        };
        Ok(uplink)
    }
}

/// `POST /v1/bindings/{name}/messages`: runs one message (or a batch) through the binding
/// and answers once each is settled: delivered, dropped by the router, or dead-lettered.
pub async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<IngestBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let (messages, batch) = match body {
        IngestBody::One(m) => (vec![m], false),
        IngestBody::Batch { messages } => (messages, true),
    };
    if messages.len() > MAX_BATCH {
        return Err(ApiError::bad_field(
            "messages",
            format!(
                "{} messages in one request; the most is {MAX_BATCH}",
                messages.len()
            ),
        ));
    }
    let mut uplinks = Vec::with_capacity(messages.len());
    for (i, m) in messages.into_iter().enumerate() {
        let at = if batch {
            format!("messages[{i}].")
        } else {
            String::new()
        };
        uplinks.push(m.into_uplink(&at)?);
    }
    let pipeline = pipeline(&state)?;
    if pipeline.is_paused(&caller.tenant, &name) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "binding-paused",
            format!("binding `{name}` is paused; resume it, or send later"),
        ));
    }
    let tenant = caller.tenant.clone();
    let pending = uplinks.into_iter().map(|uplink| {
        let pipeline = pipeline.clone();
        let tenant = tenant.clone();
        let name = name.clone();
        async move { pipeline.process(&tenant, &name, uplink).await }
    });
    let results: Vec<Result<Outcome, PipelineError>> =
        futures_util::future::join_all(pending).await;
    let mut outcomes = Vec::with_capacity(results.len());
    for result in results {
        outcomes.push(result.map_err(|e| pipeline_error(e, &name))?);
    }
    let as_json = |o: &Outcome| serde_json::to_value(o).unwrap_or(Value::Null);
    if batch {
        Ok(Json(json!({
            "results": outcomes.iter().map(as_json).collect::<Vec<_>>()
        })))
    } else {
        Ok(Json(outcomes.first().map(as_json).unwrap_or(Value::Null)))
    }
}

/// `GET /v1/bindings/{name}/recent`: the binding's last settled messages, oldest first.
pub async fn recent(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let pipeline = pipeline(&state)?;
    let store = state.store.clone();
    let (tenant, binding) = (caller.tenant.clone(), name.clone());
    let exists = crate::handlers::blocking(move || Ok(store.get_binding(&tenant, &binding)?))
        .await?
        .is_some();
    if !exists {
        return Err(pipeline_error(
            PipelineError::UnknownBinding {
                tenant: caller.tenant,
                binding: name.clone(),
            },
            &name,
        ));
    }
    Ok(Json(
        json!({ "messages": pipeline.recent(&caller.tenant, &name) }),
    ))
}

/// Body of `POST /v1/dlq/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// These entries; when absent, every entry (of `binding`, when given).
    #[serde(default)]
    ids: Option<Vec<i64>>,
    /// Only entries of this binding.
    #[serde(default)]
    binding: Option<String>,
}

/// `POST /v1/dlq/replay`: runs dead letters through their bindings again, with the module
/// versions active now. Settled entries leave the queue; one that fails again is replaced
/// by its new dead letter.
pub async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ReplayRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require_write()?;
    let pipeline = pipeline(&state)?;
    let ids = match body.ids {
        Some(ids) => {
            if ids.len() > MAX_REPLAY as usize {
                return Err(ApiError::bad_field(
                    "ids",
                    format!("{} ids; the most is {MAX_REPLAY}", ids.len()),
                ));
            }
            ids
        }
        None => {
            let store = state.store.clone();
            let tenant = caller.tenant.clone();
            let binding = body.binding.clone();
            crate::handlers::blocking(move || {
                let mut ids = Vec::new();
                let mut after = None;
                while ids.len() < MAX_REPLAY as usize {
                    let page = store.dlq_list(&tenant, binding.as_deref(), 1000, after)?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    ids.extend(page.iter().map(|e| e.id));
                }
                ids.truncate(MAX_REPLAY as usize);
                Ok(ids)
            })
            .await?
        }
    };
    let results = pipeline.replay(&caller.tenant, &ids).await;
    let count = |label: &str| {
        results
            .iter()
            .filter(|r| r.outcome.as_ref().is_some_and(|o| o.label() == label))
            .count()
    };
    Ok(Json(json!({
        "replayed": results.len(),
        "delivered": count("delivered"),
        "dropped": count("dropped"),
        "dead_lettered": count("dead-lettered"),
        "not_replayed": results.iter().filter(|r| r.outcome.is_none()).count(),
        "results": results,
    })))
}

/// `GET /metrics`: Prometheus text (OpenMetrics).
pub async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    let Some(pipeline) = state.pipeline.clone() else {
        return (StatusCode::NOT_FOUND, "no pipeline in this server\n").into_response();
    };
    let text = tokio::task::spawn_blocking(move || {
        pipeline.refresh_gauges();
        pipeline.metrics().encode()
    })
    .await
    .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// `GET /readyz`: 200 when the store answers and every broker connection is up.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.store.clone();
    let store_ok = tokio::task::spawn_blocking(move || store.schema_version().is_ok())
        .await
        .unwrap_or(false);
    let brokers_ok = state
        .pipeline
        .as_ref()
        .is_none_or(|p| p.sources_connected());
    let ready = store_ok && brokers_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "not-ready" },
            "store": if store_ok { "ok" } else { "failing" },
            "brokers": if brokers_ok { "connected" } else { "disconnected" },
        })),
    )
}
