"""Federation: the coordinator's round loop, the node, job specs, transports and simulation.

This package composes the feature packages; the same :class:`Coordinator` and :class:`Node` run in
simulation (in-memory or process transport) and in deployment (gRPC with mutual TLS).
"""

from sovereign_ai.federation.assembly import (
    build_coordinator,
    build_strategy,
    initial_parameters,
    open_store,
    stage_config,
    test_set_evaluator,
)
from sovereign_ai.federation.baselines import BaselineScore, train_alone, train_centralised
from sovereign_ai.federation.checkpoint import CheckpointStore, RoundCheckpoint
from sovereign_ai.federation.coordinator import Coordinator, node_seed
from sovereign_ai.federation.egress import EgressFilter, EgressPipeline
from sovereign_ai.federation.job import (
    JobSpec,
    SecureAggregationSection,
    SimulationBackend,
    load_job_spec,
    parse_job_spec,
)
from sovereign_ai.federation.node import LocalData, Node, StageHandler
from sovereign_ai.federation.rounds import FederationHistory, RoundObserver, RoundReport
from sovereign_ai.federation.run_folder import RunFolder
from sovereign_ai.federation.secure_node import enable_secure_aggregation
from sovereign_ai.federation.secure_steps import (
    SecureAggregationSummary,
    secure_statistics_steps,
    secure_train_steps,
    summarise,
)
from sovereign_ai.federation.simulation import (
    SimulationSetup,
    load_dataset,
    prepare_simulation,
    run_simulation,
)
from sovereign_ai.federation.steps import EvaluateStep, StatisticsStep, TrainStep
from sovereign_ai.federation.transports import InMemoryTransport, TaskHandler
from sovereign_ai.federation.workflow import RoundState, RoundStep, StageResults, StageRunner

__all__ = [
    "BaselineScore",
    "CheckpointStore",
    "Coordinator",
    "EgressFilter",
    "EgressPipeline",
    "EvaluateStep",
    "FederationHistory",
    "InMemoryTransport",
    "JobSpec",
    "LocalData",
    "Node",
    "RoundCheckpoint",
    "RoundObserver",
    "RoundReport",
    "RoundState",
    "RoundStep",
    "RunFolder",
    "SecureAggregationSection",
    "SecureAggregationSummary",
    "SimulationBackend",
    "SimulationSetup",
    "StageHandler",
    "StageResults",
    "StageRunner",
    "StatisticsStep",
    "TaskHandler",
    "TrainStep",
    "build_coordinator",
    "build_strategy",
    "enable_secure_aggregation",
    "initial_parameters",
    "load_dataset",
    "load_job_spec",
    "node_seed",
    "open_store",
    "parse_job_spec",
    "prepare_simulation",
    "run_simulation",
    "secure_statistics_steps",
    "secure_train_steps",
    "stage_config",
    "summarise",
    "test_set_evaluator",
    "train_alone",
    "train_centralised",
]
