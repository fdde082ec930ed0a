import numpy as np
import pytest
from gymnasium import spaces
from pettingzoo.test import parallel_api_test, parallel_seed_test, render_test
from pettingzoo.utils.conversions import parallel_to_aec

import normlab.envs
from normlab.envs.dilemmas.prisoners_dilemma import MoveOrMessage, IteratedPrisonersDilemmaEnv
from normlab.requests import INVALID, Choice, Text

P0, P1 = "player_0", "player_1"
C, D = 0, 1

# the defaults and the registered variants are checked in test_conformance.py
CONFIGS = [
    {"rounds": 25, "noise": 0.2},
    {"rounds": 12, "history": 4, "noise": 0.5, "payoffs": {"T": 4.5}},
    {"rounds": 1, "history": 3},
]


def play(env, moves):
    """Step through (action_0, action_1) pairs; return the list of step results."""
    return [env.step({P0: a0, P1: a1}) for a0, a1 in moves]


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("params", CONFIGS)
def test_parallel_api(params):
    parallel_api_test(IteratedPrisonersDilemmaEnv(**params), num_cycles=200)


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("params", CONFIGS)
def test_parallel_seed(params):
    parallel_seed_test(lambda: IteratedPrisonersDilemmaEnv(**params))


def test_registry_make_returns_the_parallel_env_with_params():
    env = normlab.envs.make("normlab/IteratedPrisonersDilemma-v0", rounds=7, noise=0.1, history=2)
    assert isinstance(env, IteratedPrisonersDilemmaEnv)
    assert (env.rounds, env.noise, env.history) == (7, 0.1, 2)
    assert normlab.envs.spec("normlab/IteratedPrisonersDilemma-v0").api == "parallel"


@pytest.mark.parametrize(
    ("a0", "a1", "expected"),
    [(C, C, (3.0, 3.0)), (C, D, (0.0, 5.0)), (D, C, (5.0, 0.0)), (D, D, (1.0, 1.0))],
)
def test_default_payoffs(a0, a1, expected):
    env = IteratedPrisonersDilemmaEnv()
    env.reset(seed=0)
    _, rewards, _, _, _ = env.step({P0: a0, P1: a1})
    assert (rewards[P0], rewards[P1]) == expected
    assert all(type(r) is float for r in rewards.values())


def test_partial_payoffs_override_only_given_keys():
    env = IteratedPrisonersDilemmaEnv(payoffs={"T": 10, "S": -2})
    assert env.payoffs == {"T": 10.0, "R": 3.0, "P": 1.0, "S": -2.0}
    env.reset(seed=0)
    results = play(env, [(D, C), (C, C), (D, D)])
    assert [(r[P0], r[P1]) for _, r, _, _, _ in results] == [(10.0, -2.0), (3.0, 3.0), (1.0, 1.0)]


def test_noise_one_flips_every_move():
    env = IteratedPrisonersDilemmaEnv(rounds=4, noise=1.0)
    env.reset(seed=1)
    for a0, a1 in [(C, C), (C, D), (D, C), (D, D)]:
        obs, rewards, _, _, infos = env.step({P0: a0, P1: a1})
        r0, r1 = 1 - a0, 1 - a1
        assert obs[P0]["my_moves"][-1] == r0 + 1 and obs[P0]["opponent_moves"][-1] == r1 + 1
        assert obs[P1]["my_moves"][-1] == r1 + 1 and obs[P1]["opponent_moves"][-1] == r0 + 1
        assert rewards[P0] == env._pay_pairs[r0][r1][0]
        (e0,), (e1,) = infos[P0]["events"], infos[P1]["events"]
        assert e0["type"] == ("cooperate", "defect")[r0] and e0["flipped"] is True
        assert e1["type"] == ("cooperate", "defect")[r1] and e1["flipped"] is True


def test_noise_zero_never_flips():
    env = IteratedPrisonersDilemmaEnv(rounds=50)
    env.reset(seed=1)
    for _, rewards, _, _, infos in play(env, [(C, C)] * 50):
        assert rewards == {P0: 3.0, P1: 3.0}
        assert all("flipped" not in e for info in infos.values() for e in info["events"])


def test_noise_is_seeded_by_reset():
    def flips(seed):
        env = IteratedPrisonersDilemmaEnv(rounds=100, noise=0.5)
        env.reset(seed=seed)
        return [infos[P0]["events"][-1].get("flipped", False) for *_, infos in play(env, [(C, C)] * 100)]

    assert flips(3) == flips(3)
    assert flips(3) != flips(4)
    assert 20 < sum(flips(3)) < 80


def test_reset_without_seed_continues_the_generator():
    env = IteratedPrisonersDilemmaEnv(rounds=30, noise=0.5)
    env.reset(seed=9)
    first = [i[P0]["events"][-1].get("flipped", False) for *_, i in play(env, [(C, C)] * 30)]
    env.reset()
    second = [i[P0]["events"][-1].get("flipped", False) for *_, i in play(env, [(C, C)] * 30)]
    assert first != second


@pytest.mark.parametrize("bad", [None, 7, -1, "0", "cooperate", 0.0, [0]])
def test_invalid_action_counts_as_defect(bad):
    env = IteratedPrisonersDilemmaEnv()
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({P0: bad, P1: C})
    assert rewards == {P0: 5.0, P1: 0.0}
    assert infos[P0]["events"] == [
        {"type": "invalid_action", "agent": P0, "action": repr(bad), "round": 1},
        {"type": "defect", "agent": P0, "round": 1},
    ]
    assert infos[P1]["events"] == [{"type": "cooperate", "agent": P1, "round": 1}]


def test_missing_action_counts_as_defect():
    env = IteratedPrisonersDilemmaEnv()
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({P1: C})
    assert rewards == {P0: 5.0, P1: 0.0}
    assert infos[P0]["events"][0]["type"] == "invalid_action"


def test_numpy_integer_actions_are_valid():
    env = IteratedPrisonersDilemmaEnv()
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({P0: np.int64(0), P1: np.array(1)})
    assert rewards == {P0: 0.0, P1: 5.0}
    assert [e["type"] for e in infos[P0]["events"] + infos[P1]["events"]] == ["cooperate", "defect"]


def test_events_per_round_are_in_each_players_own_info():
    env = IteratedPrisonersDilemmaEnv(rounds=3)
    _, infos = env.reset(seed=0)
    assert infos == {P0: {"events": []}, P1: {"events": []}}
    for rnd, (*_, infos) in enumerate(play(env, [(C, D), (D, D), (C, C)]), start=1):
        for agent in (P0, P1):
            assert len(infos[agent]["events"]) == 1
            event = infos[agent]["events"][0]
            assert event["agent"] == agent and event["round"] == rnd
    assert infos[P0]["events"][0]["type"] == "cooperate"


def test_terminates_after_rounds():
    env = IteratedPrisonersDilemmaEnv(rounds=5)
    env.reset(seed=0)
    for i in range(5):
        assert env.agents == [P0, P1]
        obs, rewards, terminations, truncations, _ = env.step({P0: C, P1: C})
        assert set(obs) == set(rewards) == {P0, P1}
        assert terminations == {P0: i == 4, P1: i == 4}
        assert truncations == {P0: False, P1: False}
    assert env.agents == []
    assert obs[P0]["round"] == 5
    with pytest.raises(RuntimeError, match="reset"):
        env.step({P0: C, P1: C})
    env.reset()
    assert env.agents == [P0, P1]


def test_step_before_reset_raises():
    with pytest.raises(RuntimeError, match="reset"):
        IteratedPrisonersDilemmaEnv().step({P0: C, P1: C})


def test_history_is_left_padded_with_most_recent_last():
    env = IteratedPrisonersDilemmaEnv(rounds=6, history=3)
    obs, _ = env.reset(seed=0)
    assert obs[P0]["my_moves"].tolist() == [0, 0, 0]
    assert obs[P0]["round"] == 0
    obs, *_ = env.step({P0: C, P1: D})
    assert obs[P0]["my_moves"].tolist() == [0, 0, 1]
    assert obs[P0]["opponent_moves"].tolist() == [0, 0, 2]
    assert obs[P1]["my_moves"].tolist() == [0, 0, 2]
    assert obs[P1]["opponent_moves"].tolist() == [0, 0, 1]
    for a0, a1 in [(D, D), (C, C), (D, C)]:
        obs, *_ = env.step({P0: a0, P1: a1})
    # four rounds played: the first (C, D) has left the window
    assert obs[P0]["my_moves"].tolist() == [2, 1, 2]
    assert obs[P0]["opponent_moves"].tolist() == [2, 1, 1]
    assert obs[P0]["round"] == 4
    assert env.state().tolist() == [[1, 2, 1, 2, 0, 0], [2, 2, 1, 1, 0, 0]]


def test_observations_are_in_their_spaces_and_fresh():
    env = IteratedPrisonersDilemmaEnv(rounds=10, history=2, noise=0.3)
    obs, _ = env.reset(seed=5)
    seen = [obs]
    while env.agents:
        obs, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
        seen.append(obs)
    for obs in seen:
        for agent in (P0, P1):
            assert env.observation_space(agent).contains(obs[agent])
            assert obs[agent]["my_moves"].dtype == np.int64
            assert isinstance(obs[agent]["round"], np.int64)
    assert not np.shares_memory(seen[3][P0]["my_moves"], seen[4][P0]["my_moves"])
    assert not np.shares_memory(seen[3][P0]["my_moves"], seen[3][P1]["opponent_moves"])


def test_text_mentions_round_last_moves_and_totals():
    env = IteratedPrisonersDilemmaEnv(rounds=10)
    obs, _ = env.reset(seed=0)
    text = obs[P0]["text"]
    assert "Round 1 of 10" in text and "Prisoner's Dilemma" in text
    assert "both cooperate: 3 each" in text and text.endswith("Answer 0 to cooperate or 1 to defect.")
    play(env, [(D, D)])
    obs, *_ = env.step({P0: C, P1: D})
    t0, t1 = obs[P0]["text"], obs[P1]["text"]
    assert "Round 3 of 10" in t0
    assert "Round 2: you cooperated, the other player defected; you got 0, they got 5." in t0
    assert "Round 2: you defected, the other player cooperated; you got 5, they got 0." in t1
    assert "Round 1:" not in t0  # history=1 shows only the last round
    assert "Totals so far: you 1, the other player 6." in t0
    assert t0.endswith("Answer 0 to cooperate or 1 to defect.")


def test_text_with_history_and_noise():
    env = IteratedPrisonersDilemmaEnv(rounds=3, history=2, noise=0.25)
    obs, _ = env.reset(seed=0)
    assert "25%" in obs[P0]["text"]
    env.step({P0: C, P1: C})
    env.step({P0: C, P1: C})
    obs, *_ = env.step({P0: C, P1: C})
    text = obs[P0]["text"]
    assert "All 3 rounds have been played." in text
    assert "Round 2:" in text and "Round 3:" in text and "Round 1:" not in text
    assert "Answer 0" not in text


def test_spaces_are_cached_and_action_meanings():
    env = IteratedPrisonersDilemmaEnv(history=2)
    for agent in (P0, P1):
        assert env.observation_space(agent) is env.observation_space(agent)
        assert env.action_space(agent) is env.action_space(agent)
        assert env.action_space(agent).n == 2
        assert env.observation_space(agent)["my_moves"].shape == (2,)
    assert env.observation_space(P0) is not env.observation_space(P1)
    assert env.action_meanings(P0) == ["cooperate", "defect"]
    assert env.metadata["name"] == "normlab/IteratedPrisonersDilemma-v0"
    assert env.metadata["is_parallelizable"] is True


def test_render_ansi():
    env = IteratedPrisonersDilemmaEnv(rounds=4, render_mode="ansi")
    env.reset(seed=0)
    play(env, [(C, D)])
    text = env.render()
    assert isinstance(text, str)
    assert "1 of 4 rounds played" in text and "player_0 cooperated (0), player_1 defected (5)" in text
    env.close()


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"rounds": 0}, "rounds"),
        ({"rounds": 2.5}, "rounds"),
        ({"rounds": 10**23}, "rounds"),  # never reaches numpy
        ({"rounds": True}, "rounds"),
        ({"history": 10**23}, "history"),
        ({"noise": -0.1}, "noise"),
        ({"noise": 1.5}, "noise"),
        ({"noise": "high"}, "noise"),
        ({"history": 0}, "history"),
        ({"payoffs": {"X": 1}}, "payoffs"),
        ({"payoffs": {"T": "five"}}, "payoffs"),
        ({"payoffs": {"R": float("nan")}}, "payoffs"),
        ({"payoffs": {"T": 1e308, "R": 1e308}}, "payoffs"),  # would overflow when summed
        ({"payoffs": {"T": 10**400}}, "payoffs"),  # beyond floats
        ({"payoffs": {"S": -1e10}}, "payoffs"),
        ({"payoffs": [5, 3, 1, 0]}, "payoffs"),
        ({"render_mode": "human"}, "render_mode"),
    ],
)
def test_param_validation(params, name):
    with pytest.raises(ValueError, match=name):
        IteratedPrisonersDilemmaEnv(**params)


def test_payoff_order_is_not_required():
    env = IteratedPrisonersDilemmaEnv(payoffs={"T": 0, "R": 1, "P": 2, "S": 3})
    env.reset(seed=0)
    _, rewards, *_ = env.step({P0: D, P1: C})
    assert rewards == {P0: 0.0, P1: 3.0}


def test_largest_allowed_values_build():
    from normlab.envs.dilemmas.prisoners_dilemma import MAX_PAYOFF, MAX_ROUNDS

    env = IteratedPrisonersDilemmaEnv(rounds=MAX_ROUNDS, payoffs={"T": MAX_PAYOFF, "S": -MAX_PAYOFF})
    env.reset(seed=0)
    _, rewards, *_ = env.step({P0: D, P1: C})
    assert rewards == {P0: MAX_PAYOFF, P1: -MAX_PAYOFF}


def test_declarations_of_the_base():
    env = IteratedPrisonersDilemmaEnv()
    assert set(env.event_types) == {"cooperate", "defect", "invalid_action", "message"}
    assert env.move_events == {"cooperate", "defect"}
    assert env.fallback_action(P0) == D
    assert env.params.rounds == 10 and env.params.payoffs is None


def test_noisy_variant_merges_its_kwargs_under_params():
    noisy = "normlab/IteratedPrisonersDilemma-noisy-v0"
    assert normlab.envs.spec(noisy).kwargs == {"noise": 0.05}
    env = normlab.envs.make(noisy, rounds=4)
    assert isinstance(env, IteratedPrisonersDilemmaEnv)
    assert (env.noise, env.rounds) == (0.05, 4)
    assert normlab.envs.make(noisy, noise=0.5).noise == 0.5
    assert "5%" in env.rules(P0)


@pytest.mark.parametrize(
    ("params", "messages"),
    [
        ({"rounds": 0, "noise": 2}, ["rounds must be an integer between 1 and 1,000,000, got 0", "noise must be between 0 and 1, got 2"]),
        ({"noise": "high"}, ["noise must be a finite number, got 'high'"]),
        ({"payoffs": {"T": 5, "R": "five"}}, ["payoffs['R'] must be a finite number, got 'five'"]),
        ({"payoffs": {"X": 1}}, ["payoffs has unknown key 'X'; allowed keys: T, R, P, S"]),
        ({"payoffs": [5, 3, 1, 0]}, ["payoffs must be a mapping with keys T, R, P, S, got [5, 3, 1, 0]"]),
        ({"round": 3}, ["unknown parameter of normlab/IteratedPrisonersDilemma-v0; did you mean 'rounds'?"]),
        ({"render_mode": "human"}, ["render_mode must be None or one of ['ansi'], got 'human'"]),
    ],
)
def test_bad_params_name_every_culprit(params, messages):
    with pytest.raises(normlab.envs.EnvParamsError) as excinfo:
        IteratedPrisonersDilemmaEnv(**params)
    assert [m for _, m in excinfo.value.problems] == messages
    assert str(excinfo.value).splitlines() == messages


# --- cheap talk ---------------------------------------------------------------------------

TALK_CONFIGS = [
    {"talk": True},
    {"talk": True, "rounds": 7, "history": 3, "noise": 0.3, "max_message_chars": 1},
    {"talk": True, "rounds": 1, "max_message_chars": 2000},
]


def talk_round(env, messages, moves):
    """One cheap-talk round: the talk step's results, then the act step's."""
    said = env.step({P0: messages[0], P1: messages[1]})
    moved = env.step({P0: moves[0], P1: moves[1]})
    return said, moved


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("params", TALK_CONFIGS)
def test_talk_passes_the_official_checkers(params):
    parallel_api_test(IteratedPrisonersDilemmaEnv(**params), num_cycles=200)
    parallel_seed_test(lambda: IteratedPrisonersDilemmaEnv(**params))


@pytest.mark.filterwarnings("error")
def test_talk_passes_the_render_test():
    # render_test plays the AEC API, and first builds the env with render_mode="human" only to
    # read its metadata
    def make(render_mode=None):
        return parallel_to_aec(IteratedPrisonersDilemmaEnv(talk=True, render_mode=None if render_mode == "human" else render_mode))

    render_test(make)


def test_talk_off_is_the_plain_game():
    env = IteratedPrisonersDilemmaEnv()
    assert env.talk is False and env.max_message_chars == 200
    assert env.action_space(P0) == spaces.Discrete(2)
    assert set(env.observation_space(P0).spaces) == {"round", "my_moves", "opponent_moves", "text"}
    obs, infos = env.reset(seed=0)
    assert infos == {P0: {"events": []}, P1: {"events": []}}
    assert env.action_request(P0) is None and env.fallback_action(P0) == D
    assert "message" not in obs[P0]["text"]
    _, _, _, _, infos = env.step({P0: C, P1: D})
    assert infos == {P0: {"events": [{"type": "cooperate", "agent": P0, "round": 1}]}, P1: {"events": [{"type": "defect", "agent": P1, "round": 1}]}}
    assert "message" not in env.rules(P0).lower()


def test_a_talk_round_is_two_steps_talk_then_act():
    env = IteratedPrisonersDilemmaEnv(rounds=2, talk=True)
    obs, infos = env.reset(seed=0)
    assert {a: i["phase"] for a, i in infos.items()} == {P0: "talk", P1: "talk"}
    assert obs[P0]["opponent_message"] == "" and obs[P0]["round"] == 0
    (o1, r1, t1, tr1, i1), (o2, r2, t2, tr2, i2) = talk_round(env, ("I cooperate.", "Me too."), (C, D))
    # the talk step: messages sent, nobody paid, the act phase next
    assert r1 == {P0: 0.0, P1: 0.0} and not any(t1.values()) and not any(tr1.values())
    assert i1[P0] == {"events": [{"type": "message", "agent": P0, "round": 1, "text": "I cooperate."}], "phase": "act"}
    assert i1[P1] == {"events": [{"type": "message", "agent": P1, "round": 1, "text": "Me too."}], "phase": "act"}
    assert o1[P0]["opponent_message"] == "Me too." and o1[P1]["opponent_message"] == "I cooperate."
    assert o1[P0]["round"] == 0 and o1[P0]["opponent_moves"].tolist() == [0]
    # the act step: the moves paid as without talk, the next round's talk phase next
    assert r2 == {P0: 0.0, P1: 5.0} and not any(t2.values())
    assert i2[P0] == {"events": [{"type": "cooperate", "agent": P0, "round": 1}], "phase": "talk"}
    assert o2[P0]["round"] == 1 and o2[P0]["opponent_moves"].tolist() == [2]  # tit-for-tat reads this
    assert o2[P0]["opponent_message"] == "Me too."  # the last message stays until the next one
    _, (_, r4, t4, _, i4) = talk_round(env, ("Why?", ""), (D, D))
    assert r4 == {P0: 1.0, P1: 1.0} and all(t4.values()) and env.agents == []
    assert "phase" not in i4[P0]  # no next turn
    with pytest.raises(RuntimeError, match="reset"):
        env.step({P0: "hi", P1: "hi"})
    assert env.state().tolist() == [[1, 2], [2, 2]]


def test_talk_texts_show_the_messages():
    env = IteratedPrisonersDilemmaEnv(rounds=3, talk=True, max_message_chars=50)
    obs, _ = env.reset(seed=0)
    first = obs[P0]["text"]
    assert first.startswith(env.rules(P0)) and "Cheap talk" in env.rules(P0) and "at most 50 characters" in first
    assert first.endswith("Write your message to the other player (at most 50 characters); the moves come next.")
    obs, *_ = env.step({P0: 'Let\'s both "cooperate"', P1: "deal\nok"})
    act = obs[P0]["text"]
    assert not act.startswith(env.rules(P0)) and act.startswith("Round 1 of 3 is next.")
    assert 'you said "Let\'s both \\"cooperate\\""; the other player said "deal\\nok".' in act
    assert act.endswith("Answer 0 to cooperate or 1 to defect.")
    assert 'the other player said "Let\'s both \\"cooperate\\""' in obs[P1]["text"]
    obs, *_ = env.step({P0: C, P1: C})
    talk = obs[P1]["text"]
    assert "Round 1: you cooperated, the other player cooperated" in talk
    assert 'The other player\'s last message: "Let\'s both \\"cooperate\\""' in talk
    assert talk.endswith("the moves come next.")
    for agent in (P0, P1):
        assert env.observation_space(agent).contains(obs[agent])
    talk_round(env, ("a", "b"), (C, C))
    obs, *_ = talk_round(env, ("c", "d"), (C, C))[1][:1]
    assert obs[P0]["text"].startswith("All 3 rounds have been played.") and "message" not in obs[P0]["text"]


def test_act_phase_takes_moves_as_ints_and_words():
    env = IteratedPrisonersDilemmaEnv(rounds=4, talk=True)
    env.reset(seed=0)
    for a0, a1 in [("cooperate", " Defect "), ("1", np.int64(0)), ("0", "1"), ("DEFECT", 1)]:
        _, (_, _, _, _, infos) = talk_round(env, ("", ""), (a0, a1))
        assert all(e["type"] != "invalid_action" for i in infos.values() for e in i["events"])
    assert env.state().tolist() == [[1, 2, 1, 2], [2, 1, 2, 2]]


@pytest.mark.parametrize("bad", [None, 7, "maybe", 0.0, [0], INVALID])
def test_act_phase_invalid_move_counts_as_defect(bad):
    env = IteratedPrisonersDilemmaEnv(talk=True)
    env.reset(seed=0)
    _, (_, rewards, _, _, infos) = talk_round(env, ("", ""), (bad, C))
    assert rewards == {P0: 5.0, P1: 0.0}
    assert [e["type"] for e in infos[P0]["events"]] == ["invalid_action", "defect"]


@pytest.mark.parametrize("bad", ["x" * 11, 0, None, b"hi", ["hi"], "emoji \U0001f600", INVALID, object()])
def test_a_bad_message_is_an_invalid_action_sent_as_silence(bad):
    env = IteratedPrisonersDilemmaEnv(talk=True, max_message_chars=10)
    env.reset(seed=0)
    obs, rewards, _, _, infos = env.step({P0: bad, P1: "x" * 10})
    invalid, message = infos[P0]["events"]
    assert invalid["type"] == "invalid_action" and invalid["agent"] == P0 and invalid["round"] == 1
    assert isinstance(invalid["action"], str) and len(invalid["action"]) <= 200
    assert message == {"type": "message", "agent": P0, "round": 1, "text": ""}
    assert infos[P1]["events"] == [{"type": "message", "agent": P1, "round": 1, "text": "x" * 10}]
    assert obs[P1]["opponent_message"] == "" and rewards == {P0: 0.0, P1: 0.0}
    assert infos[P0]["phase"] == "act"  # the round goes on


def test_a_huge_message_is_refused_and_shown_short():
    env = IteratedPrisonersDilemmaEnv(talk=True)
    env.reset(seed=0)
    _, _, _, _, infos = env.step({P0: "y" * 1_000_000, P1: ""})
    assert infos[P0]["events"][0]["type"] == "invalid_action" and len(infos[P0]["events"][0]["action"]) <= 200


def test_requests_and_fallbacks_follow_the_phase():
    env = IteratedPrisonersDilemmaEnv(talk=True, max_message_chars=12)
    env.reset(seed=0)
    space = env.action_space(P0)
    assert isinstance(space, MoveOrMessage) and isinstance(space, spaces.Text)
    talk = env.action_request(P0)
    assert isinstance(talk, Text) and talk.tag == "speech" and talk.max_chars == 12 and talk.min_chars == 0
    assert talk.coerce("hello") == ("hello", None)
    assert talk.coerce("x" * 13)[0] is INVALID and talk.coerce(3)[0] is INVALID
    assert env.fallback_action(P0) == "" and space.contains("")
    env.step({P0: "hello", P1: "hi"})
    move = env.action_request(P0)
    assert move == Choice(("cooperate", "defect"), (0, 1))
    assert move.coerce("defect") == (1, None)
    assert env.fallback_action(P0) == D and space.contains(D) and space.contains(C) and space.contains(np.int64(1))
    assert not space.contains(2) and not space.contains(True) and not space.contains(None)
    env.step({P0: C, P1: C})
    assert env.action_request(P1) == talk and env.fallback_action(P1) == ""
    # the fallback of each phase, given outright, is carried out without an invalid_action
    _, _, _, _, infos = env.step({P0: env.fallback_action(P0), P1: "ok"})
    assert [e["type"] for e in infos[P0]["events"]] == ["message"]
    _, _, _, _, infos = env.step({P0: env.fallback_action(P0), P1: C})
    assert [e["type"] for e in infos[P0]["events"]] == ["defect"]


def test_every_talk_event_is_declared():
    env = IteratedPrisonersDilemmaEnv(talk=True, rounds=20, noise=0.2, max_message_chars=5)
    emitted = set()
    for seed in range(3):
        env.reset(seed=seed)
        for a in env.possible_agents:
            env.action_space(a).seed(seed)
        while env.agents:
            *_, infos = env.step({a: env.action_space(a).sample() for a in env.agents})
            emitted |= {e["type"] for i in infos.values() for e in i["events"]}
    assert {"message", "invalid_action"} <= emitted <= set(env.event_types)
    assert "message" not in env.move_events


def test_talk_noise_flips_moves_not_messages():
    env = IteratedPrisonersDilemmaEnv(talk=True, rounds=3, noise=1.0)
    env.reset(seed=1)
    (_, _, _, _, said), (obs, _, _, _, moved) = talk_round(env, ("C", "C"), (C, C))
    assert said[P0]["events"] == [{"type": "message", "agent": P0, "round": 1, "text": "C"}]
    assert moved[P0]["events"] == [{"type": "defect", "agent": P0, "round": 1, "flipped": True}]


def test_talk_render_shows_the_messages():
    env = IteratedPrisonersDilemmaEnv(talk=True, rounds=2, render_mode="ansi")
    env.reset(seed=0)
    talk_round(env, ("hi", "yo"), (C, D))
    text = env.render()
    assert "player_0 cooperated (0), player_1 defected (5)" in text
    assert 'Last messages: player_0 said "hi", player_1 said "yo".' in text


def test_talk_params():
    env = IteratedPrisonersDilemmaEnv(talk=True, max_message_chars=2000)
    assert env.talk is True and env.max_message_chars == 2000
    assert env.observation_space(P0)["opponent_message"].max_length == 2000
    assert env.observation_space(P0) is IteratedPrisonersDilemmaEnv(talk=True, max_message_chars=2000).observation_space(P0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"talk": 1}, "talk must be true or false, got 1"),
        ({"talk": "yes"}, "talk must be true or false, got 'yes'"),
        ({"max_message_chars": 0}, "max_message_chars must be an integer between 1 and 2,000, got 0"),
        ({"max_message_chars": 2001}, "max_message_chars must be an integer between 1 and 2,000, got 2001"),
        ({"max_message_chars": 10.5}, "max_message_chars must be an integer between 1 and 2,000, got 10.5"),
    ],
)
def test_bad_talk_params(params, message):
    with pytest.raises(normlab.envs.EnvParamsError) as excinfo:
        IteratedPrisonersDilemmaEnv(**params)
    assert [m for _, m in excinfo.value.problems] == [message]
