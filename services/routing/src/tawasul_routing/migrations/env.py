from tawasul_platform.migrations import run_env
from tawasul_routing.adapters.tables import metadata

run_env(metadata)
