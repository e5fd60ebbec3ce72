//! [`Handle`]: what the daemon keeps about an instance of any driver. The
//! runtime passes it around without looking inside; the store keeps it as the
//! driver's name plus the driver's own handle as JSON (so process records
//! written before containers existed still read back).

use std::net::SocketAddr;

use super::InstanceHandle;
use super::docker::ContainerHandle;
use super::swarm::TaskHandle;

/// A started instance, process or container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handle {
    /// A local process ([`super::ProcessDriver`]).
    Process(InstanceHandle),
    /// A container ([`super::DockerDriver`]).
    Docker(ContainerHandle),
    /// A task of a Swarm service ([`super::swarm::SwarmDriver`]).
    Swarm(TaskHandle),
}

impl Handle {
    /// The instance id.
    pub fn instance_id(&self) -> &str {
        match self {
            Handle::Process(h) => &h.instance_id,
            Handle::Docker(h) => &h.instance_id,
            Handle::Swarm(h) => &h.instance_id,
        }
    }

    /// Where the instance takes HTTP requests; `None` for a container
    /// without a port (a worker).
    pub fn addr(&self) -> Option<SocketAddr> {
        match self {
            Handle::Process(h) => Some(h.addr),
            Handle::Docker(h) => h.addr,
            Handle::Swarm(h) => h.addr,
        }
    }

    /// The driver's name, as in `driver = "…"` and the store's `driver` column.
    pub fn driver_name(&self) -> &'static str {
        match self {
            Handle::Process(_) => "process",
            Handle::Docker(_) => "docker",
            Handle::Swarm(_) => "swarm",
        }
    }

    /// `pid 4242` or `container 0123456789ab`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Handle::Process(h) => format!("pid {}", h.pid),
            Handle::Docker(h) => format!("container {}", h.short_id()),
            Handle::Swarm(h) => h.describe(),
        }
    }

    /// Where its output goes: the log file, or how to read the container's.
    pub fn log_source(&self) -> String {
        match self {
            Handle::Process(h) => h.log_path.display().to_string(),
            Handle::Docker(h) => format!("the output of container {}", h.name),
            Handle::Swarm(h) => format!(
                "the output of {} (`docker service logs {}`)",
                h.describe(),
                h.service_name
            ),
        }
    }

    /// The driver's own handle as JSON, for the store.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Handle::Process(h) => serde_json::to_value(h),
            Handle::Docker(h) => serde_json::to_value(h),
            Handle::Swarm(h) => serde_json::to_value(h),
        }
        .unwrap_or_default()
    }

    /// Reads back what [`Handle::to_json`] stored for `driver`; `None` when it
    /// does not parse (or the driver is unknown).
    pub fn from_json(driver: &str, value: &serde_json::Value) -> Option<Handle> {
        match driver {
            "process" => serde_json::from_value(value.clone())
                .ok()
                .map(Handle::Process),
            "docker" => serde_json::from_value(value.clone())
                .ok()
                .map(Handle::Docker),
            "swarm" => serde_json::from_value(value.clone())
                .ok()
                .map(Handle::Swarm),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_through_the_store_format() {
        let process = Handle::Process(InstanceHandle {
            instance_id: "p-1".into(),
            pid: 42,
            pgid: 42,
            port: 8000,
            addr: "127.0.0.1:8000".parse().expect("addr"),
            start_time_ticks: 7,
            log_path: "/tmp/p-1.log".into(),
        });
        let docker = Handle::Docker(ContainerHandle {
            instance_id: "d-1".into(),
            container_id: "0123456789abcdef".into(),
            name: "hello-d-1".into(),
            image: "hello:v1".into(),
            addr: None,
        });
        let swarm = Handle::Swarm(TaskHandle {
            instance_id: "s-1".into(),
            service_name: "hello-production-web-v1".into(),
            service_id: "svc0123".into(),
            slot: 2,
            task_id: "task0123456789".into(),
            container_id: Some("c0ffee".into()),
            image: "hello:v1".into(),
            addr: Some("127.0.0.1:30001".parse().expect("addr")),
            in_place: None,
        });
        for h in [process, docker, swarm] {
            let back = Handle::from_json(h.driver_name(), &h.to_json());
            assert_eq!(back.as_ref(), Some(&h));
        }
        assert_eq!(
            Handle::from_json("kubernetes", &serde_json::json!({})),
            None
        );
        assert_eq!(
            Handle::from_json("docker", &serde_json::json!({"pid": 1})),
            None
        );
    }
}
