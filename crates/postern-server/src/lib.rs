//! postern-server — configuration loading, the daemon skeletons and the
//! client side of the internal protocols (layer 1).
//!
//! * [`load`]: find the configuration directory (`-c DIR`, `MAIL_CONFIG`,
//!   `/etc/postern`), read `main.cf`/`master.cf`, apply host-dependent defaults.
//! * [`skeleton`]: what every daemon does at start (parse master's arguments,
//!   load config with the service's `-o` overrides, set up logging, drop
//!   privileges to `mail_owner`), and the server loops: [`skeleton::single_server`]
//!   (one client at a time: cleanup, local, bounce) and
//!   [`skeleton::trigger_server`] (wake-up driven: pickup).
//! * [`status`]: the child → master status messages.
//! * [`client`]: connect to a service socket, send a trigger, or exchange one
//!   request and reply frame (`postern-ipc` attribute lists).
//!
//! Programs (layer 2) are a handful of callbacks plugged into these
//! skeletons, as Postfix's daemons plug into `mail_server.h`.

pub mod client;
pub mod load;
pub mod skeleton;
pub mod status;
