//! Named, versioned workflow templates. Versions only grow: a new version
//! must be greater than the latest one stored under its name.

use serde_json::Value;

use super::model::{TemplateRow, TemplateSummary};
use crate::{Store, StoreError, MAX_PAGE_SIZE};

const TEMPLATE_COLUMNS: &str = "name, version, description, spec, created_at";

impl Store {
    /// Stores version `version` of template `name` (`spec` is the whole,
    /// validated Template document). Returns `true` if it was stored, `false`
    /// if that exact version with that exact content already exists (a
    /// repeated PUT); a different or older version is a conflict.
    pub async fn put_template(
        &self,
        name: &str,
        version: u32,
        description: &str,
        spec: &Value,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        // Serializes writers of one name so "greater than the latest" holds.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('warren.template:' || $1))")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let latest: Option<(i32, Value)> = sqlx::query_as(
            "SELECT version, spec FROM workflow_templates WHERE name = $1 ORDER BY version DESC LIMIT 1",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((latest, stored)) = latest {
            if latest as i64 == version as i64 && &stored == spec {
                return Ok(false);
            }
            if version as i64 <= latest as i64 {
                return Err(StoreError::Conflict(format!(
                    "template {name:?} version {version} is not newer than the latest version {latest}"
                )));
            }
        }
        sqlx::query(
            "INSERT INTO workflow_templates (name, version, description, spec) VALUES ($1, $2, $3, $4)",
        )
        .bind(name)
        .bind(version as i32)
        .bind(description)
        .bind(spec)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Template `name` at `version`, or its latest version.
    pub async fn get_template(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<TemplateRow, StoreError> {
        let row = sqlx::query_as(&format!(
            "SELECT {TEMPLATE_COLUMNS} FROM workflow_templates
              WHERE name = $1 AND ($2::int4 IS NULL OR version = $2)
              ORDER BY version DESC LIMIT 1"
        ))
        .bind(name)
        .bind(version.map(|v| v.min(i32::MAX as u32) as i32))
        .fetch_optional(&self.pool)
        .await?;
        row.ok_or_else(|| {
            StoreError::Missing(match version {
                Some(v) => format!("template {name:?} version {v} not found"),
                None => format!("template {name:?} not found"),
            })
        })
    }

    /// The latest version of each template, by name, after `after` (cursor).
    pub async fn list_templates(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TemplateSummary>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT DISTINCT ON (name) name, version, description,
                    count(*) OVER (PARTITION BY name) AS versions, created_at
               FROM workflow_templates
              WHERE ($1::text IS NULL OR name > $1)
              ORDER BY name, version DESC
              LIMIT $2",
        )
        .bind(after)
        .bind(limit.clamp(1, MAX_PAGE_SIZE))
        .fetch_all(&self.pool)
        .await?)
    }
}
