//! `warren template put|get|list`.

use std::path::Path;
use std::process::ExitCode;

use warren_client::Template;

use super::file::read_value;
use crate::context::Context;
use crate::failure::CliError;
use crate::format::timestamp;
use crate::output::{print_json, print_text};
use crate::table::Table;

/// `warren template put FILE`: validated here, then stored.
pub(crate) async fn put(ctx: &Context, path: &Path) -> Result<ExitCode, CliError> {
    let template: Template = serde_json::from_value(read_value(path)?)
        .map_err(|e| CliError::general(format!("{}: invalid template: {e}", path.display())))?;
    template
        .validate()
        .map_err(|e| CliError::general(format!("{}: {e}", path.display())))?;
    let stored = ctx.api()?.put_template(&template).await?;
    if ctx.json() {
        print_json(&stored)?;
    } else if stored.created {
        print_text(&format!(
            "stored template {} version {}",
            stored.name, stored.version
        ))?;
    } else {
        print_text(&format!(
            "template {} version {} was already stored with this content",
            stored.name, stored.version
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `warren template get NAME [--version N]`: the template as JSON.
pub(crate) async fn get(
    ctx: &Context,
    name: &str,
    version: Option<u32>,
) -> Result<ExitCode, CliError> {
    let template = ctx.api()?.get_template(name, version).await?;
    print_json(&template)?;
    Ok(ExitCode::SUCCESS)
}

/// `warren template list`.
pub(crate) async fn list(ctx: &Context) -> Result<ExitCode, CliError> {
    let templates = ctx.api()?.list_templates().await?;
    if ctx.json() {
        print_json(&templates)?;
        return Ok(ExitCode::SUCCESS);
    }
    if templates.is_empty() {
        print_text("no templates")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&["NAME", "VERSION", "VERSIONS", "STORED", "DESCRIPTION"]);
    for t in &templates {
        table.push(vec![
            t.name.clone(),
            t.version.to_string(),
            t.versions.to_string(),
            timestamp(t.created_at),
            t.description.clone(),
        ]);
    }
    print_text(&table.render())?;
    Ok(ExitCode::SUCCESS)
}
