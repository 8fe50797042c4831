"""Image encoders, the captioner and the video classifier: teacher forcing equals step-by-step decoding, the
frame encoder equals the image encoder frame by frame, and tiny models learn to caption digit strips and to
classify the direction of a moving digit (held-out digit images) with a plain optax loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from fake_digits import prototype_digits

from rnnlab import decoding
from rnnlab.captioning import ImageCaptioner, caption_init_carry, caption_step_fn
from rnnlab.encoders import ConvEncoder, FrameEncoder, MLPEncoder, VideoClassifier
from rnnlab.tasks import digit_sequences as ds

PAD, BOS, EOS = 0, 1, 2  # word k is token 3 + k


def random_variables(model, seed, *args, scale=0.5):
    """Gaussian variables shaped like ``model.init``'s, without compiling the initialiser."""
    shapes = jax.eval_shape(model.init, jax.random.key(0), *args)
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), s.dtype), shapes)


@pytest.mark.parametrize("attention, cell", [("none", "lstm"), ("general", "gru"), ("dot", "lstm")])
def test_teacher_forcing_equals_step_by_step_decoding(attention, cell):
    model = ImageCaptioner(7, ConvEncoder((4,)), cell=cell, hidden_size=6, embed_dim=5, attention=attention)
    images = jnp.asarray(np.random.default_rng(0).random((3, 6, 8)), jnp.float32)
    dec_inputs = jnp.array([[1, 3, 4, 5], [1, 6, 2, 0], [1, 5, 0, 0]], jnp.int32)
    dec_lengths = jnp.array([4, 3, 2], jnp.int32)

    @jax.jit  # forced, stepped and the other image's logits in one program: one compilation
    def run(variables, images, dec_inputs, dec_lengths):
        forced = model.apply(variables, images, dec_inputs, dec_lengths)
        other = model.apply(variables, images[::-1], dec_inputs, dec_lengths)
        carry = caption_init_carry(model, variables, images)
        step = caption_step_fn(model, variables)
        stepped = []
        for t in range(dec_inputs.shape[1]):
            carry, log_probs = step(carry, dec_inputs[:, t])
            stepped.append(log_probs)
        return forced, jnp.stack(stepped, 1), other

    variables = random_variables(model, 1, images, dec_inputs, dec_lengths)
    forced, stepped, other = run(variables, images, dec_inputs, dec_lengths)
    valid = np.arange(4)[None, :] < np.asarray(dec_lengths)[:, None]
    forced_lp = np.asarray(jax.nn.log_softmax(forced, -1))
    np.testing.assert_allclose(forced_lp[valid], np.asarray(stepped)[valid], atol=1e-5)
    bias = variables["params"]["decoder"]["out"]["bias"]
    np.testing.assert_array_equal(np.asarray(forced)[~valid], np.broadcast_to(bias, ((~valid).sum(), 7)))
    # The image matters: another image changes the logits from the first step on.
    assert np.abs(np.asarray(other)[0, 0] - np.asarray(forced)[0, 0]).max() > 1e-3


def test_frame_encoder_is_the_image_encoder_on_every_frame():
    frames = jnp.asarray(np.random.default_rng(0).random((2, 3, 6, 6)), jnp.float32)
    encoder = ConvEncoder((3,), out_dim=4)
    model = FrameEncoder(encoder)
    variables = random_variables(model, 0, frames)

    @jax.jit  # the model and the encoder on each frame in one program: one compilation, not one per op
    def out_and_wants(variables, frames):
        inner = {"params": variables["params"]["encoder"]}
        wants = [encoder.apply(inner, frames[:, t]).reshape(2, -1) for t in range(3)]
        return model.apply(variables, frames), wants

    out, wants = out_and_wants(variables, frames)
    for t in range(3):
        np.testing.assert_allclose(out[:, t], wants[t], rtol=1e-6)
    assert out.shape == (2, 3, 3 * 3 * 4)


def caption_batch(strips):
    """Token arrays for strips: decoder inputs ``[BOS, w1..wn]``, targets ``[w1..wn, EOS]``, lengths n+1."""
    m, k = strips.digits.shape
    words = np.where(strips.digits >= 0, strips.digits + 3, PAD)
    targets = np.full((m, k + 1), PAD, np.int32)
    for i, n in enumerate(strips.num_digits):
        targets[i, :n] = words[i, :n]
        targets[i, n] = EOS
    dec_inputs = np.concatenate([np.full((m, 1), BOS, np.int32), targets[:, :-1]], axis=1)
    dec_inputs = np.where(dec_inputs == EOS, PAD, dec_inputs)
    return dec_inputs, targets, strips.num_digits + 1


def test_captioner_learns_to_read_digit_strips_of_held_out_digits():
    images, labels = prototype_digits(3, 300, (6, 5), flip=0.05)
    pools = ds.split_digits(labels, {"train": 0.8, "test": 0.2})
    model = ImageCaptioner(6, ConvEncoder((8,)), cell="lstm", hidden_size=32, embed_dim=8)
    train = ds.make_strips(images, labels, pools["train"], 2048, max_digits=3, seed=0)
    test = ds.make_strips(images, labels, pools["test"], 128, max_digits=3, seed=1)
    data = tuple(jnp.asarray(a) for a in (train.images, *caption_batch(train)))
    opt = optax.adam(1e-2)

    def loss_fn(params, x, di, tg, ln):
        logits = model.apply({"params": params}, x, di, ln)
        mask = jnp.arange(tg.shape[1])[None] < ln[:, None]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, tg)
        return jnp.sum(ce * mask) / jnp.sum(mask)

    @jax.jit
    def step(params, opt_state, i):
        idx = (i * 32 + jnp.arange(32)) % len(data[0])
        grads = jax.grad(loss_fn)(params, *(a[idx] for a in data))
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    images2, dec_in2, _, lengths2 = (a[:2] for a in data)
    params = jax.jit(model.init)(jax.random.key(0), images2, dec_in2, lengths2)["params"]
    opt_state = opt.init(params)
    for i in range(300):
        params, opt_state = step(params, opt_state, i)

    carry = caption_init_carry(model, params, test.images)
    tokens = np.asarray(decoding.greedy(caption_step_fn(model, params), carry, BOS, 4, EOS))
    words = [" ".join(ds.NUMBER_WORDS[t - 3] for t in row if t > EOS) for row in tokens]
    accuracy = np.mean([w == c for w, c in zip(words, test.captions, strict=True)])
    assert accuracy >= 0.9, (accuracy, words[:5], test.captions[:5])
    beams, _ = decoding.beam_search(caption_step_fn(model, params), carry, BOS, 4, EOS, beam_size=3)
    assert np.mean(np.all(np.asarray(beams[:, 0]) == tokens, axis=1)) >= 0.9


def test_video_classifier_learns_the_direction_of_a_moving_digit():
    images, labels = prototype_digits(3, 60, (3, 3), flip=0.0)
    pools = ds.split_digits(labels, {"train": 0.5, "test": 0.5})
    kw = {"canvas": (9, 9), "num_frames": (3, 5), "directions": 4, "speeds": (1,)}
    train = ds.moving_digit_clips(images, pools["train"], 1024, seed=0, **kw)
    test = ds.moving_digit_clips(images, pools["test"], 128, seed=1, **kw)
    params, predict = _train_video_classifier(train, num_classes=4)
    assert set(params) == {"encoder", "sequence"}  # frame_features=None: no per-frame Dense
    accuracy = np.mean(np.asarray(predict(test.frames, test.lengths)) == test.labels)
    assert accuracy >= 0.9, accuracy


def _train_video_classifier(clips, num_classes=2, steps=200):
    """A small GRU video classifier trained on ``clips``: params and jitted ``predict(x, lengths)``."""
    model = VideoClassifier(
        MLPEncoder((), out_dim=16), num_classes, frame_features=None, cell="gru", hidden_size=16
    )
    data = tuple(jnp.asarray(a) for a in (clips.frames, clips.lengths, clips.labels))
    opt = optax.adam(1e-2)

    def loss_fn(params, x, ln, y):
        return optax.softmax_cross_entropy_with_integer_labels(
            model.apply({"params": params}, x, ln), y
        ).mean()

    @jax.jit
    def step(params, opt_state, i):
        idx = (i * 32 + jnp.arange(32)) % len(data[0])
        grads = jax.grad(loss_fn)(params, *(a[idx] for a in data))
        updates, opt_state = opt.update(grads, opt_state)
        return optax.apply_updates(params, updates), opt_state

    params = jax.jit(model.init)(jax.random.key(0), clips.frames[:2], clips.lengths[:2])["params"]
    opt_state = opt.init(params)
    for i in range(steps):
        params, opt_state = step(params, opt_state, i)
    return params, jax.jit(lambda x, ln: jnp.argmax(model.apply({"params": params}, x, ln), -1))


def test_shuffled_frames_control_stays_at_chance_where_only_the_order_tells_the_class():
    """East vs west at one speed: a frame alone shows where the digit is, never where it goes. On clips whose
    frames are shuffled (``moving_digits`` ``shuffled=True``) the same model stays at chance (1/2) while
    on ordered clips it learns: what it learns is the order."""
    images, labels = prototype_digits(3, 60, (3, 3), flip=0.0)
    pools = ds.split_digits(labels, {"train": 0.5, "test": 0.5})
    kw = {"canvas": (7, 9), "num_frames": (3, 5), "directions": 2, "speeds": (1,)}
    train = ds.moving_digit_clips(images, pools["train"], 1024, seed=0, **kw)
    test = ds.moving_digit_clips(images, pools["test"], 400, seed=1, **kw)
    accuracy = {}
    for name, shuffle in (("ordered", lambda c, s: c), ("shuffled", ds.shuffle_frames)):
        _, predict = _train_video_classifier(shuffle(train, 2))
        held_out = shuffle(test, 3)
        accuracy[name] = float(np.mean(np.asarray(predict(held_out.frames, held_out.lengths)) == test.labels))
    assert accuracy["ordered"] >= 0.9 and abs(accuracy["shuffled"] - 0.5) < 0.1, accuracy
