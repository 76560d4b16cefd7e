//! Changing a container's state: start, stop, restart, pause, unpause,
//! kill, remove. Each reads the state first, refuses a conflict (already
//! running, not paused …) and returns the state after the action.

use std::time::Duration;

use bollard::query_parameters as qp;

use super::client::{Conn, Docker};
use super::convert::{name_of, short_id, state_output, state_view};
use super::limits::DEFAULT_STOP_SECS;
use super::types::{ContainerStateOutput, RemoveOutput, StateView};
use crate::mcp::contract::{ErrorCategory, ToolError};

fn conflict(message: String, hint: &str) -> ToolError {
    ToolError::new(ErrorCategory::Conflict, message, hint)
}

impl Docker {
    /// Inspect, check, act, inspect again.
    async fn container_action(
        &self,
        container: &str,
        verb: &str,
        check: impl FnOnce(&StateView, &str) -> Result<(), ToolError>,
        act: impl AsyncFnOnce(&Conn, &str) -> Result<(), ToolError>,
    ) -> Result<ContainerStateOutput, ToolError> {
        let c = self.conn().await?;
        let before = self.inspect(&c, container).await?;
        let name = name_of(&before);
        check(&state_view(before.state.as_ref()), &name)?;
        let id = before.id.clone().unwrap_or_default();
        act(&c, &id).await?;
        let after = self.inspect(&c, &id).await?;
        Ok(state_output(&before, &after, verb))
    }

    fn stop_limit(&self, grace: u32, spine_secs: u64) -> Duration {
        (self.timeout() + Duration::from_secs(u64::from(grace))).min(Self::budget(spine_secs))
    }

    /// Starts a stopped container; refuses a running or paused one.
    pub async fn container_start(&self, container: &str) -> Result<ContainerStateOutput, ToolError> {
        self.container_action(
            container,
            "started",
            |s, name| {
                if s.paused {
                    Err(conflict(format!("{name} is paused"), "use container_unpause"))
                } else if s.running {
                    Err(conflict(format!("{name} is already running"), "use container_restart to restart it"))
                } else {
                    Ok(())
                }
            },
            async |c, id| {
                self.run(c, self.timeout(), c.api.start_container(id, None::<qp::StartContainerOptions>)).await
            },
        )
        .await
    }

    /// Stops a running container: the stop signal, then SIGKILL after
    /// `grace` seconds. `spine_secs` is the spine's limit for the whole call.
    pub async fn container_stop(
        &self,
        container: &str,
        grace: u32,
        spine_secs: u64,
    ) -> Result<ContainerStateOutput, ToolError> {
        let limit = self.stop_limit(grace, spine_secs);
        self.container_action(
            container,
            "stopped",
            |s, name| {
                if s.running || s.restarting {
                    Ok(())
                } else {
                    Err(conflict(format!("{name} is already stopped ({})", s.status), "start it with container_start"))
                }
            },
            async |c, id| {
                let opts = qp::StopContainerOptions { signal: None, t: Some(grace as i32) };
                self.run(c, limit, c.api.stop_container(id, Some(opts))).await
            },
        )
        .await
    }

    /// Restarts a container (stop with `grace` seconds, then start);
    /// refuses a paused one.
    pub async fn container_restart(
        &self,
        container: &str,
        grace: u32,
        spine_secs: u64,
    ) -> Result<ContainerStateOutput, ToolError> {
        let limit = self.stop_limit(grace, spine_secs);
        self.container_action(
            container,
            "restarted",
            |s, name| {
                if s.paused {
                    Err(conflict(format!("{name} is paused"), "unpause it first with container_unpause"))
                } else {
                    Ok(())
                }
            },
            async |c, id| {
                let opts = qp::RestartContainerOptions { signal: None, t: Some(grace as i32) };
                self.run(c, limit, c.api.restart_container(id, Some(opts))).await
            },
        )
        .await
    }

    /// Freezes a running container; refuses one not running or already paused.
    pub async fn container_pause(&self, container: &str) -> Result<ContainerStateOutput, ToolError> {
        self.container_action(
            container,
            "paused",
            |s, name| {
                if s.paused {
                    Err(conflict(format!("{name} is already paused"), "use container_unpause"))
                } else if !s.running {
                    Err(conflict(format!("{name} is not running ({})", s.status), "start it first"))
                } else {
                    Ok(())
                }
            },
            async |c, id| self.run(c, self.timeout(), c.api.pause_container(id)).await,
        )
        .await
    }

    /// Resumes a paused container; refuses one that is not paused.
    pub async fn container_unpause(&self, container: &str) -> Result<ContainerStateOutput, ToolError> {
        self.container_action(
            container,
            "unpaused",
            |s, name| {
                if s.paused {
                    Ok(())
                } else {
                    Err(conflict(format!("{name} is not paused ({})", s.status), "nothing to resume"))
                }
            },
            async |c, id| self.run(c, self.timeout(), c.api.unpause_container(id)).await,
        )
        .await
    }

    /// Sends `signal` (a name like `SIGTERM`, or a number) to a running
    /// container's main process.
    pub async fn container_kill(&self, container: &str, signal: &str) -> Result<ContainerStateOutput, ToolError> {
        self.container_action(
            container,
            &format!("sent {signal} to"),
            |s, name| {
                if s.running {
                    Ok(())
                } else {
                    Err(conflict(format!("{name} is not running ({})", s.status), "nothing to signal"))
                }
            },
            async |c, id| {
                self.run(
                    c,
                    self.timeout(),
                    c.api.kill_container(id, Some(qp::KillContainerOptions { signal: signal.to_string() })),
                )
                .await?;
                // Give a fatal signal a moment to take effect.
                for _ in 0..20 {
                    let st = self.inspect(c, id).await?;
                    if !state_view(st.state.as_ref()).running {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
                Ok(())
            },
        )
        .await
    }

    /// Removes a container (`force` kills a running one; `volumes` also
    /// removes its anonymous volumes); refuses a running one without force.
    pub async fn container_remove(
        &self,
        container: &str,
        force: bool,
        volumes: bool,
        spine_secs: u64,
    ) -> Result<RemoveOutput, ToolError> {
        let c = self.conn().await?;
        let before = self.inspect(&c, container).await?;
        let st = state_view(before.state.as_ref());
        let name = name_of(&before);
        if (st.running || st.paused || st.restarting) && !force {
            return Err(conflict(
                format!("{name} is {}", st.status),
                "stop it first with container_stop, or pass force=true",
            ));
        }
        let id = before.id.clone().unwrap_or_default();
        let opts = qp::RemoveContainerOptions { v: volumes, force, link: false };
        self.run(&c, self.stop_limit(DEFAULT_STOP_SECS, spine_secs), c.api.remove_container(&id, Some(opts))).await?;
        let exists = match self.inspect(&c, &id).await {
            Ok(_) => true,
            Err(e) if e.category == ErrorCategory::NotFound => false,
            Err(e) => return Err(e),
        };
        Ok(RemoveOutput {
            summary: format!("removed {name} (was {})", st.status),
            id: short_id(&id),
            name,
            previous_status: st.status,
            removed: !exists,
            exists,
        })
    }
}
