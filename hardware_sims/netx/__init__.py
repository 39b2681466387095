"""lava-dl netx ``.net`` files (field by field in ``NETX.md``).

* `limits`: what netx can load (`netx_limits`, `NetxExportError`);
* `quantize`: one layer's integers on netx's formats;
* `write`: `write_netx`, a sequential NIR chain -> ``.net`` plus snnav's fixed-point plan of the same integers;
* `importer`: `read_netx`, a netx file (snnav's or lava-dl's: input/dense/conv/flatten, CUBA) -> a NIR graph;
* `read`: `read_netx_layers`; `run`: `run_netx`, netx's own loader on Lava (Lava imported only inside it).
"""

from hardware_sims.netx.importer import NetxImportError, read_netx
from hardware_sims.netx.limits import NETX_MESSAGE_BITS, NetxExportError, netx_limits
from hardware_sims.netx.read import read_netx_layers
from hardware_sims.netx.run import NetxRun, run_netx
from hardware_sims.netx.write import NetxLayer, NetxReport, write_netx

__all__ = ["NetxExportError", "NetxLayer", "NetxReport", "NetxRun", "netx_limits", "write_netx", "read_netx_layers",
           "run_netx", "NETX_MESSAGE_BITS", "read_netx", "NetxImportError"]
