from tawasul_docs.adapters.tables import metadata
from tawasul_platform.migrations import run_env

run_env(metadata)
