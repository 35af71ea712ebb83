"""The one probe of the sandbox-view assignment: what the sandboxed student process can see of its machine."""

import view

REPLIES = {
    "look": {"cuda_devices": "list", "cuda_error": "text|none", "dev_nodes": "list", "host_paths": "list",
             "network_interfaces": "list", "environment": "list", "pid_1": "text", "processes": "number",
             "writable": "list", "tensor_sum": "number|none"},
}


def look(host_paths):
    return view.look(host_paths)
