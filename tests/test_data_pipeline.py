"""grain train/eval pipelines: balance, determinism, checkpoints, augmentations,
padding and masks, per-process shards."""

import itertools
import os

from absl import flags
import grain
import numpy as np
from PIL import Image
import pytest
import tensorflow_datasets as tfds

from mdmf_jax.data import builder
from mdmf_jax.data import decode
from mdmf_jax.data import pipeline
from mdmf_jax.data import synthetic
from mdmf_jax.data import transforms

SIZE = 16  # every image of the "square" data set is SIZE x SIZE PNG
NUM_REAL, NUM_FAKE = 11, 10


@pytest.fixture(scope="module")
def square(tmp_path_factory):
  """11 real + 10 fake lossless SIZE x SIZE images, two generators."""
  root = str(tmp_path_factory.mktemp("square"))
  synthetic.write_folder(root, "generator", {"generator": ["gen_a", "gen_b"]},
                         per_label=5, size=(SIZE, SIZE), real_format="PNG")
  rng = np.random.default_rng(7)
  Image.fromarray(synthetic.random_crop(rng, SIZE, SIZE)).save(
      os.path.join(root, "gen_b/0_real/extra.png"))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder.build_image_folder(name="square", layout="generator",
                             roots={"train": root, "test": root},
                             data_dir=data_dir)
  return data_dir


@pytest.fixture(scope="module")
def square_records(square):
  source = tfds.data_source("square", split="train", data_dir=square,
                            download=False)
  return [source[i] for i in range(len(source))]


def identify(records):
  """Pixel bytes of a decoded record -> its index (the images are distinct)."""
  ids = {decode.decode_rgb8(r["image"]).tobytes(): i for i, r in enumerate(records)}
  assert len(ids) == len(records)
  return ids


def take(dataset, n):
  return list(itertools.islice(iter(dataset), n))


def as_uint8(images):
  uint8 = np.rint(images * 255).astype(np.uint8)
  np.testing.assert_array_equal(uint8.astype(np.float32) / 255, images)
  return uint8


PLAIN = dict(image_size=SIZE, flip=False, blur_prob=0.0, jpeg_prob=0.0)


def train(data_dir, **kwargs):
  kwargs = {"global_batch_size": 6, "seed": 0, **PLAIN, **kwargs}
  return pipeline.train_dataset(data_dir, "square", **kwargs)


def test_train_batches_are_balanced_reals_first(square):
  for batch in take(train(square, image_size=8, flip=True), 5):
    assert batch["image"].shape == (6, 8, 8, 3)
    assert batch["image"].dtype == np.float32 and batch["label"].dtype == np.int32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["label"].tolist() == [0, 0, 0, 1, 1, 1]


def test_train_epochs_see_every_example_once_labels_right(square, square_records):
  ids = identify(square_records)
  batches = take(train(square), 8)  # 24 reals and 24 fakes: 2+ epochs each
  seen = [[ids[as_uint8(img).tobytes()] for img in b["image"]] for b in batches]
  reals = [i for s in seen for i in s[:3]]
  fakes = [i for s in seen for i in s[3:]]
  assert all(square_records[i]["label"] == 0 for i in reals)
  assert all(square_records[i]["label"] == 1 for i in fakes)
  assert sorted(reals[:NUM_REAL]) == list(range(NUM_REAL))
  assert sorted(reals[NUM_REAL:2 * NUM_REAL]) == list(range(NUM_REAL))
  assert reals[:NUM_REAL] != reals[NUM_REAL:2 * NUM_REAL]  # reshuffled
  assert sorted(fakes[:NUM_FAKE]) == list(range(NUM_REAL, NUM_REAL + NUM_FAKE))


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])


def test_train_is_deterministic_given_the_seed(square):
  augmented = dict(image_size=8, flip=True, blur_prob=0.5, jpeg_prob=0.5)
  first = take(train(square, **augmented), 4)
  assert_same_batches(first, take(train(square, num_threads=1, **augmented), 4))
  other = take(train(square, seed=1, **augmented), 4)
  assert not np.array_equal(first[0]["image"], other[0]["image"])


def test_train_iterator_state_restores_exactly(square):
  dataset = train(square, image_size=8, flip=True, blur_prob=0.5)
  iterator = iter(dataset)
  take(iterator, 3)
  state = iterator.get_state()
  expected = take(iterator, 3)
  resumed = iter(dataset)
  resumed.set_state(state)
  assert_same_batches(take(resumed, 3), expected)


def test_train_worker_processes_give_the_same_batches(square):
  # grain's worker processes read absl flags; outside an absl app nobody parsed
  # them, so take the defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  augmented = dict(image_size=8, flip=True, blur_prob=0.5, jpeg_prob=0.5)
  assert_same_batches(take(train(square, num_workers=2, **augmented), 4),
                      take(train(square, **augmented), 4))


def plain_and(data_dir, **augmentation):
  """(unaugmented, augmented) uint8 images of the same slots (same shuffle)."""
  plain = np.concatenate([b["image"] for b in take(train(data_dir), 4)])
  augmented = np.concatenate(
      [b["image"] for b in take(train(data_dir, **augmentation), 4)])
  return as_uint8(plain), augmented


def test_blur_is_cnnspot_gaussian_blur(square):
  plain, blurred = plain_and(square, blur_prob=1.0, blur_sigma=(1.5, 1.5))
  for p, b in zip(plain, as_uint8(blurred)):
    np.testing.assert_array_equal(b, transforms.gaussian_blur(p, 1.5))


def test_jpeg_augmentation_and_format_alignment_are_pillow_jpeg(square):
  plain, compressed = plain_and(square, jpeg_prob=1.0, jpeg_quality=(40, 40))
  for p, c in zip(plain, as_uint8(compressed)):
    np.testing.assert_array_equal(c, transforms.jpeg_roundtrip(p, 40))
  plain, aligned = plain_and(square, format_alignment_quality=75)
  for p, a in zip(plain, as_uint8(aligned)):
    np.testing.assert_array_equal(a, transforms.jpeg_roundtrip(p, 75))


def test_augmentation_probabilities_and_flip(square):
  plain, out = plain_and(square, blur_prob=0.5, blur_sigma=(2.0, 2.0), flip=True)
  out = as_uint8(out)
  kinds = []
  for p, o in zip(plain, out):
    candidates = {"plain": p, "blur": transforms.gaussian_blur(p, 2.0)}
    candidates.update({f"{k}+flip": v[:, ::-1] for k, v in list(candidates.items())})
    [kind] = [k for k, v in candidates.items() if np.array_equal(o, v)]
    kinds.append(kind)
  assert {"plain", "blur", "plain+flip", "blur+flip"} == set(kinds)


def test_random_crop_is_a_window_of_the_image(square):
  plain, cropped = plain_and(square, image_size=5)
  offsets = set()
  for p, c in zip(plain, as_uint8(cropped)):
    windows = [(t, l) for t in range(SIZE - 4) for l in range(SIZE - 4)
               if np.array_equal(p[t:t + 5, l:l + 5], c)]
    assert windows
    offsets.add(windows[0])
  assert len(offsets) > 10


def test_resize_option(square):
  plain, resized = plain_and(square, resize=8, image_size=8)
  for p, r in zip(plain, as_uint8(resized)):
    np.testing.assert_array_equal(r, transforms.resize(p, 8, 8))


def test_train_processes_read_disjoint_shards(square, square_records):
  ids = identify(square_records)
  reals = []
  for index in range(2):
    shard = grain.sharding.ShardOptions(shard_index=index, shard_count=2)
    batches = take(train(square, global_batch_size=12, shard_options=shard), 2)
    assert all(b["label"].tolist() == [0, 0, 0, 1, 1, 1] for b in batches)
    reals.append({ids[as_uint8(img).tobytes()] for b in batches
                  for img in b["image"][:3]})
  assert not reals[0] & reals[1]
  assert reals[0] | reals[1] == set(range(NUM_REAL))


def test_batch_sizes_are_checked(square):
  with pytest.raises(ValueError, match="multiple of 2 x 1 processes"):
    train(square, global_batch_size=5)
  shard = grain.sharding.ShardOptions(shard_index=0, shard_count=2)
  with pytest.raises(ValueError, match="global_batch_size=6 .* 2 x 2 processes"):
    train(square, global_batch_size=6, shard_options=shard)
  with pytest.raises(ValueError, match="small_images='crop'"):
    train(square, small_images="crop")


def evaluate(data_dir, name, **kwargs):
  kwargs = {"global_batch_size": 4, "image_size": SIZE, **kwargs}
  return list(pipeline.eval_dataset(data_dir, name, **kwargs))


def test_eval_sees_every_example_once_padded_with_mask(square, square_records):
  batches = evaluate(square, "square")
  total = NUM_REAL + NUM_FAKE
  assert len(batches) == -(-total // 4)
  source = pipeline.open_split(square, "square", "test")
  names = pipeline.generator_names(source)
  assert names == ["gen_a", "gen_b"]
  valid = []
  for batch in batches:
    assert batch["image"].shape == (4, SIZE, SIZE, 3)
    for row in range(4):
      index = int(batch["index"][row])
      if not batch["mask"][row]:
        assert index == -1 and batch["generator"][row] == -1
        assert not batch["image"][row].any() and batch["path"][row] == ""
        continue
      valid.append(index)
      record = square_records[index]
      assert batch["path"][row] == record["path"].decode()
      assert batch["label"][row] == record["label"]
      assert names[batch["generator"][row]] == record["path"].decode().split("/")[0]
      np.testing.assert_array_equal(as_uint8(batch["image"][row]),
                                    decode.decode_rgb8(record["image"]))
  assert valid == list(range(total))
  assert int(sum(b["mask"].sum() for b in batches)) == total
  again = evaluate(square, "square")
  for a, b in zip(batches, again):
    np.testing.assert_array_equal(a["image"], b["image"])


def test_eval_processes_split_the_data_and_stay_in_step(square):
  indices, lengths = [], []
  for index in range(2):
    shard = grain.sharding.ShardOptions(shard_index=index, shard_count=2)
    batches = evaluate(square, "square", global_batch_size=8,
                       shard_options=shard)
    assert all(b["image"].shape[0] == 4 for b in batches)
    lengths.append(len(batches))
    indices.append([int(i) for b in batches for i, m in zip(b["index"], b["mask"])
                    if m])
  assert lengths[0] == lengths[1] == 3
  assert not set(indices[0]) & set(indices[1])
  assert sorted(indices[0] + indices[1]) == list(range(NUM_REAL + NUM_FAKE))


@pytest.fixture(scope="module")
def sizes(tmp_path_factory):
  """Three images: 20x24, 16x16 and a small 8x12 one, stored losslessly."""
  root = str(tmp_path_factory.mktemp("sizes"))
  rng = np.random.default_rng(3)
  images = {"g/0_real/a.png": (20, 24), "g/0_real/b.png": (16, 16),
            "g/1_fake/small.png": (8, 12)}
  pixels = {}
  for relpath, shape in images.items():
    os.makedirs(os.path.dirname(os.path.join(root, relpath)), exist_ok=True)
    pixels[relpath] = synthetic.random_crop(rng, *shape)
    Image.fromarray(pixels[relpath]).save(os.path.join(root, relpath))
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder.build_image_folder(name="sizes", layout="generator",
                             roots={"test": root}, data_dir=data_dir)
  return data_dir, pixels


def eval_images(data_dir, **kwargs):
  [batch] = evaluate(data_dir, "sizes", global_batch_size=3, **kwargs)
  return dict(zip(batch["path"], as_uint8(batch["image"])))


def test_eval_centre_crop_and_zero_padding(sizes):
  data_dir, pixels = sizes
  out = eval_images(data_dir, image_size=12)
  np.testing.assert_array_equal(out["g/0_real/a.png"],
                                pixels["g/0_real/a.png"][4:16, 6:18])
  np.testing.assert_array_equal(out["g/0_real/b.png"],
                                pixels["g/0_real/b.png"][2:14, 2:14])
  small = out["g/1_fake/small.png"]
  np.testing.assert_array_equal(small[2:10], pixels["g/1_fake/small.png"])
  assert not small[:2].any() and not small[10:].any()


def test_eval_resize_and_upsample(sizes):
  data_dir, pixels = sizes
  out = eval_images(data_dir, image_size=10, resize=10)
  for path, image in out.items():
    np.testing.assert_array_equal(image, transforms.resize(pixels[path], 10, 10))
  out = eval_images(data_dir, image_size=12, small_images="upsample")
  upsampled = transforms.resize(pixels["g/1_fake/small.png"], 12, 18)
  np.testing.assert_array_equal(out["g/1_fake/small.png"], upsampled[:, 3:15])
