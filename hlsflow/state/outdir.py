"""The state of an output directory, under the names the rest of hlsflow has used: a transition
that hands on what state/ now keeps by job (manifest, folder, lock, records) and inputs.py. New code
imports those modules; this one goes when the last caller has moved."""

from ..steps import CACHE_DIR  # noqa: F401
from .folder import (STAGING_MARK, UNFINISHED_STATUSES, accounted_files, all_files, atomic_temp_of,  # noqa: F401
                     cannot_write, changed_since, check_output_path, check_owned, check_writable, foreign_files,
                     is_accounted, remove_dead_staging, snapshot, staging)
from ..inputs import (NOT_IN_TREE, command_line, design_inputs, design_sources, digest, effective_config,  # noqa: F401
                     environment, hash_files, lib_stamp, model_hashes, remember_command, run_inputs, tree_hash)
from .lock import claimed, locked  # noqa: F401
from .manifest import (FORMAT, MANIFEST, RUNS_KEPT, Manifest, changed_outputs, damaged, has_manifest,  # noqa: F401
                       manifest_problem, stage_record)
from .records import (CHANGED, CURRENT, MISSING, STALE, UNFINISHED, WRITE_ERRORS, Caches, Outcome, Record,  # noqa: F401
                      csynth_xml_path, emulation_library, made_from, project_stage, require_project)
