# sandlotd node on every host of the `sandbox` node pool: Nomad's counterpart of the Kubernetes
# DaemonSet. Read README.md first; nothing here has been run (there is no Nomad to run it on).
#
#   nomad job run -var control_plane_url=http://sandlot-control.example.internal:7070 \
#     deploy/nomad/sandlot-node.nomad.hcl
#
# Secrets come from the Nomad Variable nomad/jobs/sandlot-node (items join_token and
# token_public_key), which only this job can read.

variable "control_plane_url" {
  type        = string
  description = "Where nodes reach the control plane: a load balancer over the sandlot-control allocations."
}

variable "max_sandboxes" {
  type        = number
  default     = 50
  description = "Sandboxes per host; size it to the hosts of the sandbox pool."
}

job "sandlot-node" {
  # One allocation on every eligible client, like a DaemonSet.
  type = "system"
  # A pool of dedicated hosts: nothing else shares a kernel with untrusted code, and only this
  # pool's clients enable raw_exec.
  node_pool = "sandbox"

  # Nomad has no OnDelete: changing this job replaces the agents, which fails every running
  # process on each host. Drain the hosts through the control plane before `nomad job run`
  # (README.md); then at least the replacements go one host at a time.
  update {
    max_parallel = 1
    stagger      = "1m"
  }

  group "node" {
    network {
      # A static port on the host's address: the control plane calls the agent there.
      port "agent" {
        static = 7071
      }
    }

    # A crashed agent restarts in place: it finds its sandboxes and records under the data dir.
    restart {
      attempts = 3
      interval = "10m"
      delay    = "15s"
      mode     = "delay"
    }

    service {
      provider = "nomad"
      name     = "sandlot-node"
      port     = "agent"
      check {
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "5s"
      }
    }

    task "sandlotd" {
      # raw_exec, not exec or docker: the agent needs the host itself (root; namespaces and
      # cgroups it creates outside its own; overlayfs and btrfs mounts in the host's mount
      # namespace, so they outlive an agent restart; veth pairs in the host's network
      # namespace). exec would chroot it, drop capabilities and confine it to a task cgroup.
      # E2B runs its per-host orchestrator the same way.
      driver = "raw_exec"

      config {
        command = "/usr/local/bin/sandlotd"
        args    = ["node"]
      }

      env {
        SANDLOT_LISTEN                = "${NOMAD_ADDR_agent}"
        SANDLOT_ADVERTISE_URL         = "http://${NOMAD_ADDR_agent}"
        SANDLOT_NODE_NAME             = "${node.unique.name}"
        SANDLOT_CONTROL_PLANE         = var.control_plane_url
        SANDLOT_DATA_DIR              = "/var/lib/sandlot"
        SANDLOT_MAX_SANDBOXES         = var.max_sandboxes
        SANDLOT_TOKEN_PUBLIC_KEY_FILE = "${NOMAD_SECRETS_DIR}/token-public.key"
      }

      # The join token, as an environment variable (sandlotd clears the environment of
      # everything it starts in a sandbox). change_mode "noop": a rotated secret must not
      # restart the agent behind your back; pick it up when the host is drained.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/sandlot-node" -}}
          SANDLOT_JOIN_TOKEN={{ .join_token }}
          {{ end -}}
        EOT
        destination = "secrets/join.env"
        env         = true
        change_mode = "noop"
      }

      # Only the public key: a node verifies sandbox tokens, it can never mint them.
      template {
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/sandlot-node" }}{{ .token_public_key }}{{ end }}
        EOT
        destination = "secrets/token-public.key"
        perms       = "0400"
        change_mode = "noop"
      }

      # The agent stops its processes, stores their records and unmounts on SIGTERM.
      kill_timeout = "60s"

      # What the scheduler reserves for the agent itself; the sandboxes' own cgroups carry
      # their limits.
      resources {
        cpu    = 500
        memory = 512
      }
    }
  }
}
