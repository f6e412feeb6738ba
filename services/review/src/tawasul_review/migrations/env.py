from tawasul_platform.migrations import run_env
from tawasul_review.adapters.tables import metadata

run_env(metadata)
