//! `/define`: a form and a TOML editor to define funnels in the browser. Saving posts the TOML to
//! `POST /api/funnels` with the file's version (`static/app.js`); the page shows the `line:column` error
//! of a bad definition, or the job's progress, then opens the new funnel's page.

use std::fmt::Write as _;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{error_page, escape, layout};
use crate::catalog::Catalog;
use crate::state::Shared;

/// What the editor starts with.
const TEMPLATE: &str = "[[funnel]]\nid = \"my_funnel\"\nwindow = \"7d\"\nmode = \"ordered\"\nsteps = [\n  { event = \"install\" },\n  { event = \"purchase\" },\n]\n";

/// `GET /define`.
pub async fn page(State(state): State<Shared>) -> Response {
    let result = state
        .blocking(|s| {
            let c = Catalog::read(s)?;
            let version = c.file.as_ref().map(|f| f.version.clone()).unwrap_or_default();
            let mut apps = String::new();
            for app in &c.apps {
                let _ = write!(apps, "<option value=\"{a}\">{a}</option>", a = escape(app));
            }
            Ok(format!(
                "<h1>Define a funnel</h1>\n\
<p class=\"meta\">New funnels are added to the funnels file (a funnel with the id of an existing one replaces it) and computed over all history on disk in the background, by the batch job `funnel run` runs. The format: steps, windows, modes, exclusions and breakdowns as in docs/FUNNELS.md.</p>\n\
<form id=\"builder\" class=\"builder\"><fieldset><legend>Form</legend>\
<label>id <input name=\"id\" value=\"my_funnel\" required></label> \
<label>window <input name=\"window\" value=\"7d\" size=\"5\"></label> \
<label>mode <select name=\"mode\"><option>ordered</option><option>strict_order</option><option>unordered</option></select></label> \
<label>breakdown <input name=\"breakdown\" placeholder=\"props.os\" size=\"10\"></label><br>\
<label>steps, one event name per line<br><textarea name=\"steps\" rows=\"4\" cols=\"30\">install\npurchase</textarea></label><br>\
<button type=\"button\" id=\"fill\">Write into the editor</button></fieldset></form>\n\
<form id=\"define\" data-version=\"{version}\"><fieldset><legend>TOML</legend>\
<textarea id=\"toml\" name=\"toml\" rows=\"14\" cols=\"80\" spellcheck=\"false\">{template}</textarea><br>\
<label>then show app <select id=\"app\" name=\"app\">{apps}</select></label> \
<button type=\"submit\" id=\"save\">Save and compute</button></fieldset></form>\n\
<p class=\"error\" id=\"error\" hidden></p>\n\
<div id=\"progress\" hidden><progress id=\"bar\" max=\"1\" value=\"0\"></progress> <span id=\"phase\"></span></div>\n",
                version = escape(&version),
                template = escape(TEMPLATE),
            ))
        })
        .await;
    match result {
        Ok(body) => layout("define a funnel", &body).into_response(),
        Err(e) => error_page(e),
    }
}
