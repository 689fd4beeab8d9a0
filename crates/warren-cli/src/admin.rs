//! `warren cancel|retry|approve ID`: one operator move, printed as
//! `ID: from → to`. A refused move (409) exits 2, an unknown job (404) 3.

use std::process::ExitCode;

use uuid::Uuid;

use crate::context::Context;
use crate::failure::CliError;
use crate::output::{print_json, print_text};

/// Which move, with who made it and why for the event log.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// `POST /v1/jobs/{id}/cancel`.
    Cancel {
        by: Option<String>,
        reason: Option<String>,
    },
    /// `POST /v1/jobs/{id}/retry`.
    Retry,
    /// `POST /v1/jobs/{id}/approve`.
    Approve {
        by: Option<String>,
        comment: Option<String>,
    },
}

/// Runs the move.
pub(crate) async fn run(ctx: &Context, action: Action, id: Uuid) -> Result<ExitCode, CliError> {
    let api = ctx.api()?;
    let moved = match action {
        Action::Cancel { by, reason } => {
            api.cancel_as(id, by.as_deref(), reason.as_deref()).await?
        }
        Action::Retry => api.retry(id).await?,
        Action::Approve { by, comment } => {
            api.approve_as(id, by.as_deref(), comment.as_deref())
                .await?
        }
    };
    if ctx.json() {
        print_json(&moved)?;
    } else {
        print_text(&format!("{}: {} → {}", moved.id, moved.from, moved.to))?;
    }
    Ok(ExitCode::SUCCESS)
}
