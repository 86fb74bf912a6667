//! `monitor trace`: the enriched events as JSON lines keyed by Falco's field names, like
//! sysdig's JSON output, so that what a user sees is what a rule can test.

use serde_json::{Map, Value, json};

use crate::event::Event;

/// One event as a JSON object with Falco field names as keys.
pub fn event_json(ev: &Event) -> Value {
    let p = &ev.process;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    put("evt.num", json!(ev.num));
    put("evt.time", json!(ev.ts));
    put(
        "evt.datetime",
        json!(crate::alert::format_rfc3339_nanos(ev.ts)),
    );
    put("evt.type", json!(ev.ty.name()));
    put("evt.category", json!(ev.ty.category()));
    put("evt.cpu", json!(ev.cpu));
    put("evt.res", json!(ev.res_string()));
    put("evt.rawres", json!(ev.res));
    put("evt.latency", json!(ev.latency_ns));
    put("evt.args", json!(ev.args_string()));
    let args: Map<String, Value> = ev
        .args
        .iter()
        .map(|a| (a.name.to_string(), json!(a.value.render())))
        .collect();
    put("evt.arg", Value::Object(args));
    put("thread.tid", json!(ev.tid));
    put("proc.pid", json!(p.pid));
    put("proc.ppid", json!(p.ppid));
    put("proc.vpid", json!(p.vpid));
    put("proc.name", json!(p.name));
    put("proc.exe", json!(p.exe));
    put("proc.exepath", json!(p.exepath));
    put("proc.cmdline", json!(p.cmdline()));
    put("proc.args", json!(p.args_string()));
    put("proc.cwd", json!(p.cwd));
    put("proc.tty", json!(p.tty));
    put(
        "proc.pname",
        json!(p.parent.as_ref().map(|q| q.name.clone())),
    );
    put(
        "proc.pexepath",
        json!(p.parent.as_ref().map(|q| q.exepath.clone())),
    );
    put(
        "proc.pcmdline",
        json!(p.parent.as_ref().map(|q| q.cmdline())),
    );
    let anames: Vec<&str> = p.ancestors().map(|a| a.name.as_str()).collect();
    put("proc.anames", json!(anames));
    put("user.uid", json!(ev.user.uid));
    put("user.name", json!(ev.user.name.as_ref()));
    put("user.loginuid", json!(ev.user.loginuid));
    put("user.loginname", json!(ev.user.loginname.as_ref()));
    put("group.gid", json!(ev.user.gid));
    put("group.name", json!(ev.user.group.as_ref()));
    if let Some(fd) = &ev.fd {
        put("fd.num", json!(fd.num));
        put("fd.type", json!(fd.kind.name()));
        put("fd.typechar", json!(fd.kind.typechar().to_string()));
        put("fd.name", json!(fd.name));
        put("fd.nameraw", json!(fd.nameraw));
        put("fd.directory", json!(fd.directory()));
        put("fd.filename", json!(fd.filename()));
        if let Some(t) = &fd.tuple {
            put("fd.l4proto", json!(t.proto.name()));
            put("fd.cip", json!(t.client().0.to_string()));
            put("fd.cport", json!(t.client().1));
            put("fd.sip", json!(t.server().0.to_string()));
            put("fd.sport", json!(t.server().1));
            put("fd.lip", json!(t.local.0.to_string()));
            put("fd.lport", json!(t.local.1));
            put("fd.rip", json!(t.remote.0.to_string()));
            put("fd.rport", json!(t.remote.1));
        }
    }
    if ev.open_flags().is_some() {
        put("evt.is_open_read", json!(ev.is_open_read()));
        put("evt.is_open_write", json!(ev.is_open_write()));
    }
    let c = &ev.container;
    put("container.id", json!(c.id));
    put("container.type", json!(c.runtime.name()));
    if !c.is_host() {
        put("container.full_id", json!(c.full_id));
        put("container.name", json!(c.name));
        put("container.image", json!(c.image));
        put("container.image.repository", json!(c.image_repository));
        put("container.image.tag", json!(c.image_tag));
        put("container.image.digest", json!(c.image_digest));
        put("container.privileged", json!(c.privileged));
        put("container.start_ts", json!(c.start_ts));
        if let Some(k) = &c.k8s {
            put("k8s.pod.name", json!(k.pod_name));
            put("k8s.pod.uid", json!(k.pod_uid));
            put("k8s.ns.name", json!(k.ns_name));
            put("k8s.pod.labels", json!(k.pod_labels));
        }
    }
    Value::Object(m)
}
