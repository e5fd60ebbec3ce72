//! `cutover approve ID [--comment]` and `cutover reject ID --reason`: decide a
//! deployment that awaits approval. The daemon refuses the deployer's own
//! approval (four eyes) and a deployment that does not await approval.

use std::path::Path;

use super::output;
use crate::api::wire::{ApproveRequest, DecisionAnswer, RejectRequest};
use crate::exit::CliError;

/// `cutover approve ID [--comment TEXT]`.
pub async fn approve(
    path: &Path,
    id: i64,
    comment: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let answer = client
        .approve(
            id,
            &ApproveRequest {
                comment,
                requested_by: None,
            },
        )
        .await?;
    show(&answer, json)
}

/// `cutover reject ID --reason TEXT`.
pub async fn reject(path: &Path, id: i64, reason: String, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let answer = client
        .reject(
            id,
            &RejectRequest {
                reason,
                requested_by: None,
            },
        )
        .await?;
    show(&answer, json)
}

fn show(answer: &DecisionAnswer, json: bool) -> Result<(), CliError> {
    if json {
        return output::print_json(answer);
    }
    let id = answer.deployment_id;
    match answer.outcome.as_str() {
        "approved" => println!(
            "approved deployment {id} in {} ({} of {} approval(s)): it goes on; follow it with `cutover history --events`",
            answer.environment, answer.approvals, answer.required
        ),
        "waiting" => println!(
            "approved deployment {id} in {} ({} of {} approval(s)): {} more needed from another approver",
            answer.environment,
            answer.approvals,
            answer.required,
            answer.required.saturating_sub(answer.approvals)
        ),
        _ => println!(
            "rejected deployment {id} in {}: it ends, nothing was started",
            answer.environment
        ),
    }
    Ok(())
}
