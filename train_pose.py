"""Train the pose-to-latent network of pose-driven video: per-frame poses in, the generator's latents out, e.g.

    python dataset_tool.py --source=signer.mp4 --pose=signer.pose --dest=signer-256x256.zip
    python train.py --outdir=runs --cfg=stylegan3-r --data=signer-256x256.zip --gpus=1 --batch=32 --gamma=8 ...
    python projector.py --network=signer.pkl --target-dataset=signer-256x256.zip --outdir=proj
    python train_pose.py --data=signer-256x256.zip --latents=proj/latents.npz --network=signer.pkl --outdir=pose-run
    python gen_video.py --network=signer.pkl --pose=sentence.pose --pose-model=pose-run/pose-model.pkl --output=out.mp4

The network (training/networks_pose.py) reads windows of --seq-len frames of pose features and predicts each
frame's w, trained with Adam on the mean absolute error to the projected latents. Validation takes whole
pieces of the sequences (training/pose_sequences.py); training stops after --epochs or when the validation
error has not improved for --patience epochs. Every --snap epochs the training state (training-state.pt), the
best network so far (pose-model.pkl) and validation frames rendered through G (val-frames-EPOCH.png: the
dataset frame, its projection, the prediction) are written, each atomically. Rerunning the same command
continues exactly where the last training state left off (--epochs and --patience may change).

--synthetic=N trains without a dataset, for generators of real people: N sequences of random latents (keyframes
every SYNTHETIC_KEY_GAP frames, truncation SYNTHETIC_PSI, a cubic spline between them) are rendered by G, and
MediaPipe Holistic (requirements-pose.txt) estimates the pose in every render; frames where it finds no shoulders
are dropped. Each sequence is CHUNK_WINDOWS x --seq-len frames long. The pairs are kept in synthetic-data.npz,
so a continued run reads them instead of estimating again.
"""

import copy
import hashlib
import json
import os
import pickle
import sys
import time

import click
import numpy as np
import PIL.Image
import scipy.interpolate
import torch
import tqdm

import dnnlib
import gen_images
import legacy
import projector
from training import networks_pose
from training import pose as pose_lib
from training import pose_sequences
from training.dataset import DatasetError, ImageFolderDataset
from training.training_loop import open_tensorboard

SYNTHETIC_NAME = 'synthetic-data.npz'
SYNTHETIC_KEY_GAP = 8           # Frames between the random keyframe latents of a synthetic sequence.
SYNTHETIC_PSI = 0.7             # Truncation of those latents: typical people rather than the distribution's edges.
SYNTHETIC_FPS = 25.0            # Frame rate recorded for synthetic sequences (they have no video of their own).
STATE_NAME = 'training-state.pt'
MODEL_NAME = 'pose-model.pkl'
LOG_NAME = 'log.txt'
VAL_FRAMES = 8                  # Frames shown per validation image.
SETTINGS_FIXED = ('layers', 'hidden', 'seq_len', 'batch', 'lr', 'val_fraction', 'seed', 'network_sha256',
                  'data_sha256', 'latents_sha256', 'synthetic')  # What a resumed run must share with the saved state.

# ----------------------------------------------------------------------------
# Inputs.


def file_sha256(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def open_dataset(path, option='--data'):
    if not os.path.exists(path):
        raise click.ClickException(f'{option}: no such dataset: {path}')
    try:
        return ImageFolderDataset(path=path)
    except DatasetError as err:
        raise click.ClickException(f'{option}: {err}')


def read_latents(path, dataset_path, dataset, network_sha256):
    """ws [N, w_layers, w_dim] of a latents file of projector.py --target-dataset, checked to be of this dataset
    (same content, same frames) and this network."""
    if not os.path.isfile(path):
        raise click.ClickException(f'--latents: no such file: {path}')
    saved = projector.read_latents_file(path)
    missing = [key for key in ('w', 'fnames', 'w_plus', 'network_sha256', 'dataset_sha256') if key not in saved]
    if missing:
        raise click.ClickException(f'--latents: {path} is not a latents file of projector.py --target-dataset '
                                   f'(it has no {missing[0]!r})')
    if saved['network_sha256'] != network_sha256:
        raise click.ClickException(f'--latents: {path} was projected with another network than --network; project '
                                   f'the dataset with this network (projector.py --target-dataset)')
    fnames = dataset.image_fnames
    if list(saved['fnames']) != list(fnames) or saved['dataset_sha256'] != projector.dataset_fingerprint(dataset_path, fnames):
        raise click.ClickException(f'--latents: {path} is the projection of another dataset than {dataset_path}; '
                                   f'pair each --data with its own latents file, in the same order')
    w = np.asarray(saved['w'], dtype=np.float32)
    return w if saved['w_plus'] else w[:, :1]


def load_pose_datasets(data_paths, latents_paths, network_sha256):
    """(sequences, datasets, layout, fps) of the --data / --latents pairs."""
    if len(data_paths) != len(latents_paths):
        raise click.ClickException(f'{len(data_paths)} --data but {len(latents_paths)} --latents: give one latents '
                                   f'file per dataset, in the same order')
    sequences, datasets, layouts, fps = [], [], [], None
    for source, (data_path, latents_path) in enumerate(zip(data_paths, latents_paths)):
        dataset = open_dataset(data_path)
        try:
            pose, index = pose_sequences.read_dataset_poses(data_path, len(dataset.image_fnames))
        except (pose_sequences.PoseDataError, pose_lib.PoseError) as err:
            raise click.ClickException(f'--data: {err}')
        ws = read_latents(latents_path, data_path, dataset, network_sha256)
        if layouts and index['layout'] != layouts[0]:
            raise click.ClickException(f'--data: {data_path} holds {index["layout"]} poses, {data_paths[0]} '
                                       f'{layouts[0]} poses; one pose model reads one layout')
        if sequences and ws.shape[1:] != sequences[0].ws.shape[1:]:
            raise click.ClickException(f'--latents: {latents_path} is {"not " if ws.shape[1] == 1 else ""}a W+ '
                                       f'projection, unlike {latents_paths[0]}; project every dataset the same way')
        layouts.append(index['layout'])
        fps = index['fps'] if fps is None else fps
        datasets.append(dataset)
        sequences += pose_sequences.dataset_sequences(source, data_path, pose, index, ws)
    return sequences, datasets, layouts[0], fps

# ----------------------------------------------------------------------------
# Synthetic pairs: G's renders of random latent sequences, with the poses MediaPipe finds in them.


def synthetic_ws(G, label, num_frames, seed):
    """float32 [num_frames, 1, w_dim]: a cubic spline through random keyframe latents every SYNTHETIC_KEY_GAP
    frames."""
    num_keys = num_frames // SYNTHETIC_KEY_GAP + 4  # Enough for a cubic spline, and one past the end.
    z = torch.from_numpy(np.random.RandomState(seed).randn(num_keys, G.z_dim).astype(np.float32)).to(label.device)
    with torch.no_grad():
        keys = G.mapping(z, label.expand(num_keys, -1), truncation_psi=SYNTHETIC_PSI)[:, 0].cpu().numpy()
    spline = scipy.interpolate.interp1d(np.arange(num_keys) * SYNTHETIC_KEY_GAP, keys, kind='cubic', axis=0)
    return spline(np.arange(num_frames)).astype(np.float32)[:, None]


@torch.no_grad()
def render_frames(G, ws, device, batch=8):
    """uint8 [N, H, W, 3] renders of ws [N, 1, w_dim]."""
    frames = []
    for part in torch.from_numpy(ws).split(batch):
        images = G.synthesis(part.to(device).expand(-1, G.num_ws, -1), noise_mode='const',
                             force_fp32=(device.type != 'cuda'))
        frames.append(gen_images.images_to_uint8(images).cpu().numpy())
    frames = np.concatenate(frames)
    return np.repeat(frames, 3, axis=3) if frames.shape[3] == 1 else frames


def make_synthetic_data(G, num_sequences, num_frames, seed, device):
    """dict(features [M, F], ws [M, 1, w_dim], sequence [M]) of the frames MediaPipe finds shoulders in."""
    from training import pose_estimation  # pylint: disable=import-outside-toplevel  # Optional: MediaPipe.
    label = torch.zeros([1, G.c_dim], device=device)
    parts = dict(features=[], ws=[], sequence=[])
    for index in tqdm.tqdm(range(num_sequences), desc='synthetic sequences', unit='seq', disable=None):
        ws = synthetic_ws(G, label, num_frames, seed=int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
        pose = pose_estimation.estimate_frames(render_frames(G, ws, device), fps=SYNTHETIC_FPS, progress=False)
        found = pose_lib.shoulders(pose, 'holistic')[2]
        parts['features'].append(pose_lib.pose_features(pose)[found])
        parts['ws'].append(ws[found])
        parts['sequence'].append(np.full(int(found.sum()), index, np.int64))
    return {key: np.concatenate(value) for key, value in parts.items()}


def synthetic_sequences(outdir, G, num_sequences, num_frames, seed, device):
    """The Sequences of --synthetic, from synthetic-data.npz when an earlier run of this --outdir made it."""
    from training import pose_estimation  # pylint: disable=import-outside-toplevel  # Optional: MediaPipe.
    path = os.path.join(outdir, SYNTHETIC_NAME)
    making = dict(network_sha256=projector.generator_fingerprint(G), num_sequences=num_sequences,
                  num_frames=num_frames, seed=seed)
    if os.path.isfile(path):
        with np.load(path, allow_pickle=False) as saved:
            data = {key: saved[key] for key in saved.files}
        if any(key not in data or data[key].item() != value for key, value in making.items()):
            raise click.ClickException(f'{path} was made with another --network, --synthetic, --seq-len or --seed; '
                                       f'rerun with the same ones, or choose another --outdir')
    else:
        try:
            pose_estimation.check_available()
        except pose_estimation.EstimationUnavailableError as err:
            raise click.ClickException(f'--synthetic: {err}')
        print(f'Rendering {num_sequences} sequences of {num_frames} frames and estimating their poses...')
        data = make_synthetic_data(G, num_sequences, num_frames, seed, device)
        if len(data['ws']) == 0:
            raise click.ClickException(f'--synthetic: MediaPipe found no person in any of the {num_sequences * num_frames} '
                                       f'renders; this mode needs a generator of people (else use --data and --latents)')
        data.update({key: np.array(value) for key, value in making.items()})
        os.makedirs(outdir, exist_ok=True)
        dnnlib.util.write_atomically(path, lambda f: np.savez(f, **data), fsync=True)
    print(f'Synthetic pairs: {len(data["ws"])} frames with a pose, of {num_sequences * num_frames} rendered')
    sequences = []
    for index in range(num_sequences):
        rows = np.flatnonzero(data['sequence'] == index)
        if len(rows):
            sequences.append(pose_sequences.Sequence(name=f'synthetic:{index}', source=0, frames=rows,
                                                     features=data['features'][rows], ws=data['ws'][rows]))
    return sequences

# ----------------------------------------------------------------------------
# Training state.


def build_model(settings, feature_dim, G):
    torch.manual_seed(settings['seed'])
    return networks_pose.PoseToLatent(feature_dim=feature_dim, w_dim=G.w_dim, num_ws=G.num_ws,
                                      w_plus=settings['w_plus'], hidden=settings['hidden'], layers=settings['layers'])


def load_state(path, settings):
    """The saved training state, refused (one line) when it belongs to another run."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # pylint: disable=broad-except
        raise click.ClickException(f'cannot read {path} ({type(err).__name__}); remove it to start over') from None
    saved = state.get('settings', {}) if isinstance(state, dict) else {}
    for key in SETTINGS_FIXED:
        if saved.get(key) != settings[key]:
            option = {'network_sha256': '--network', 'data_sha256': '--data', 'latents_sha256': '--latents'}.get(
                key, '--' + key.replace('_', '-'))
            raise click.ClickException(f'{path} belongs to a run with another {option}: rerun with the same inputs '
                                       f'and options, or choose another --outdir')
    return state


def save_state(path, state):
    dnnlib.util.write_atomically(path, lambda f: torch.save(state, f), fsync=True)


def save_pose_model(path, model, best, extra):
    """pose-model.pkl: the best network (CPU, eval) with what gen_video.py checks and needs."""
    best_model = copy.deepcopy(model).cpu().eval().requires_grad_(False)
    best_model.load_state_dict(best['model'])
    data = dict(P=best_model, epoch=int(best['epoch']), val_mae=float(best['val_mae']), **extra)
    dnnlib.util.write_atomically(path, lambda f: pickle.dump(data, f), fsync=True)

# ----------------------------------------------------------------------------
# One epoch, validation, rendering.


def train_epoch(model, optimizer, chunks, windows, *, seq_len, batch, seed, epoch, device):
    """One pass over the windows in a seeded order; the mean training MAE."""
    model.train()
    order = np.random.RandomState([seed, epoch]).permutation(len(windows))
    total, count = 0.0, 0
    for first in range(0, len(order), batch):
        features, ws, mask = (t.to(device) for t in pose_sequences.collate(chunks, [windows[i] for i in order[first:first + batch]], seq_len))
        predicted = model(features)[:, :, :ws.shape[2]]
        loss = pose_sequences.masked_mae(predicted, ws, mask)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * float(mask.sum())
        count += float(mask.sum())
    return total / max(count, 1)


@torch.no_grad()
def predict(model, chunk, device):
    """ws [T, w_layers, w_dim] for every frame of a chunk, the network run over it from its start."""
    model.eval()
    features = torch.from_numpy(chunk.features).to(device)[None]
    return model(features)[0, :, :chunk.ws.shape[1]].cpu()


def validate(model, chunks, device):
    """(val MAE, mean-latent MAE): the network's error on the validation chunks, and that of always answering
    the training set's mean latent (what an uninformed network would learn)."""
    errors, baseline, count = 0.0, 0.0, 0
    for chunk in chunks:
        target = torch.from_numpy(chunk.ws)
        errors += float((predict(model, chunk, device) - target).abs().sum())
        baseline += float((model.w_mean.cpu()[None] - target).abs().sum())
        count += target.numel()
    return errors / count, baseline / count


@torch.no_grad()
def render_validation(path, G, model, chunk, dataset, device):
    """An image of rows real frame, projection, prediction for up to VAL_FRAMES frames of `chunk`."""
    picks = np.unique(np.linspace(0, len(chunk.frames) - 1, min(VAL_FRAMES, len(chunk.frames))).round().astype(int))
    predicted = predict(model, chunk, device)[picks]
    projected = torch.from_numpy(chunk.ws[picks])
    rows = []
    if dataset is not None:
        rows.append(np.stack([dataset[int(chunk.frames[i])][0].transpose(1, 2, 0) for i in picks]))
    for ws in (projected, predicted):
        ws = ws.to(device).expand(-1, G.num_ws, -1) if ws.shape[1] == 1 else ws.to(device)
        images = G.synthesis(ws, noise_mode='const', force_fp32=(device.type != 'cuda'))
        rows.append(gen_images.images_to_uint8(images).cpu().numpy())
    grid = np.concatenate([np.concatenate(list(row), axis=1) for row in rows], axis=0)
    if grid.shape[2] == 1:
        grid = grid[:, :, 0]
    dnnlib.util.write_atomically(path, lambda f: PIL.Image.fromarray(grid).save(f, format='png'))

# ----------------------------------------------------------------------------


def run_training(outdir, split, datasets, G, settings, extra, saved_state, *, epochs, patience, snap, device):
    """Trains the pose network on `split` (train and val chunks of split_by_sequence()), or continues `saved_state`
    (load_state()); writes the state, pose-model.pkl and validation frames in outdir."""
    train_chunks, val_chunks = split
    windows = pose_sequences.training_windows(train_chunks, settings['seq_len'])
    print(f'{sum(len(c.frames) for c in train_chunks)} training frames in {len(windows)} windows; '
          f'{sum(len(c.frames) for c in val_chunks)} validation frames in {len(val_chunks)} pieces')

    model = build_model(settings, train_chunks[0].features.shape[1], G).to(device)
    state_path = os.path.join(outdir, STATE_NAME)
    if saved_state is not None:
        state = saved_state
        model.load_state_dict(state['model'])
        print(f'Resuming after epoch {state["epoch"]} from {state_path}')
    else:
        model.set_normalisation(np.concatenate([c.features for c in train_chunks]),
                                np.concatenate([c.ws for c in train_chunks]))
        state = dict(settings=settings, epoch=0, model=None, optimizer=None, best=None, stopped=False, history=[])
    optimizer = torch.optim.Adam(model.parameters(), lr=settings['lr'])
    if state['optimizer'] is not None:
        optimizer.load_state_dict(state['optimizer'])

    tensorboard = open_tensorboard(outdir, purge_step=state['epoch'] + 1)
    model_path = os.path.join(outdir, MODEL_NAME)
    val_dataset = datasets[val_chunks[0].source] if datasets else None
    try:
        while not state['stopped'] and state['epoch'] < epochs:
            epoch = state['epoch'] + 1
            start = time.time()
            train_mae = train_epoch(model, optimizer, train_chunks, windows, seq_len=settings['seq_len'],
                                    batch=settings['batch'], seed=settings['seed'], epoch=epoch, device=device)
            val_mae, mean_mae = validate(model, val_chunks, device)
            best = state['best']
            if best is None or val_mae < best['val_mae']:
                best = dict(epoch=epoch, val_mae=val_mae, model={k: v.detach().cpu().clone() for k, v in model.state_dict().items()})
            stopped = epoch - best['epoch'] >= patience
            state.update(epoch=epoch, best=best, stopped=stopped,
                         history=state['history'] + [dict(epoch=epoch, train_mae=train_mae, val_mae=val_mae)])
            print(f'epoch {epoch:<5d} train MAE {train_mae:<8.5f} val MAE {val_mae:<8.5f} (mean latent '
                  f'{mean_mae:.5f}; best {best["val_mae"]:.5f} at epoch {best["epoch"]})  '
                  f'sec/epoch {time.time() - start:.2f}')
            if tensorboard is not None:
                for name, value in (('train_mae', train_mae), ('val_mae', val_mae), ('val_mae_mean_latent', mean_mae)):
                    tensorboard.add_scalar(f'Loss/{name}', value, epoch)
                tensorboard.flush()
            if stopped:
                print(f'Early stop: no better validation MAE for {patience} epochs')
            if epoch % snap == 0 or stopped or epoch == epochs:
                state.update(model=model.state_dict(), optimizer=optimizer.state_dict())
                save_pose_model(model_path, model, best, extra)
                render_validation(os.path.join(outdir, f'val-frames-{epoch:05d}.png'), G, model, val_chunks[0],
                                  val_dataset, device)
                save_state(state_path, state)
                print(f'Saved {model_path} (epoch {best["epoch"]}, val MAE {best["val_mae"]:.5f}) and {state_path}')
    finally:
        if tensorboard is not None:
            tensorboard.close()
    if not os.path.isfile(model_path) and state['best'] is not None:
        save_pose_model(model_path, model, state['best'], extra)
    return state

# ----------------------------------------------------------------------------


@click.command()
@click.option('--data', 'data_paths', help='Pose dataset (dataset_tool.py --pose): zip or folder; repeat for several',
              metavar='ZIP|DIR', multiple=True)
@click.option('--latents', 'latents_paths', help='Its latents (projector.py --target-dataset); one per --data, in order',
              metavar='NPZ', multiple=True)
@click.option('network_pkl', '--network', help='Generator the latents belong to (path or URL)', metavar='PATH|URL', required=True)
@legacy.trust_pickle_option
@click.option('--outdir', help='Folder of the run: pose-model.pkl, training state, logs', metavar='DIR', required=True)
@click.option('--layers', help='Stacked LSTM layers', type=click.IntRange(min=1), default=4, show_default=True)
@click.option('--hidden', help='Width of the dense layer and of each LSTM', type=click.IntRange(min=1), default=512, show_default=True)
@click.option('--seq-len', help='Frames per training window', type=click.IntRange(min=2), default=32, show_default=True)
@click.option('--batch', help='Windows per step', type=click.IntRange(min=1), default=32, show_default=True)
@click.option('--lr', help='Adam learning rate', type=dnnlib.cli.FiniteFloat(min=0, min_open=True), default=1e-3, show_default=True)
@click.option('--epochs', help='Most passes over the training windows', type=click.IntRange(min=1), default=200, show_default=True)
@click.option('--patience', help='Stop after this many epochs without a better validation error', type=click.IntRange(min=1), default=20, show_default=True)
@click.option('--snap', help='Epochs between saves of the state, the model and validation frames', type=click.IntRange(min=1), default=5, show_default=True)
@click.option('--val-fraction', help='Share of the sequence pieces held out for validation', type=dnnlib.cli.FiniteFloat(min=0, max=1, min_open=True, max_open=True), default=0.1, show_default=True)
@click.option('--seed', help='Seed of the initial weights, the split and the window order', type=click.IntRange(min=0), default=0, show_default=True)
@click.option('--synthetic', help='Instead of --data: this many sequences rendered by G, posed by MediaPipe', type=click.IntRange(min=2), metavar='N')
def main(data_paths, latents_paths, network_pkl, outdir, layers, hidden, seq_len, batch, lr, epochs, patience, snap,
         val_fraction, seed, synthetic):
    """Train a pose-to-latent network (pose-model.pkl) for gen_video.py --pose.

    Each --data is a pose dataset of dataset_tool.py --pose and each --latents the projection of that dataset
    through --network (projector.py --target-dataset). --synthetic=N instead renders N random latent sequences
    with G and estimates their poses with MediaPipe (requirements-pose.txt). Rerunning with the same --outdir
    continues the run.

    \b
    Examples:
    python train_pose.py --data=signer-256x256.zip --latents=proj/latents.npz --network=signer.pkl --outdir=pose-run
    python train_pose.py --synthetic=200 --network=people.pkl --outdir=pose-run-synthetic
    """
    if synthetic is not None and (data_paths or latents_paths):
        raise click.ClickException('--synthetic replaces --data and --latents; give one or the other')
    if synthetic is None and not data_paths:
        raise click.ClickException('give --data=ZIP (a pose dataset) with --latents=NPZ (its projection), or --synthetic=N')
    dnnlib.cli.check_output_dir(outdir, '--outdir')
    device = gen_images.choose_device(verbose=False)
    G = gen_images.load_generator(network_pkl, device)
    network_sha256 = projector.generator_fingerprint(G)
    if synthetic is None:
        sequences, datasets, layout, fps = load_pose_datasets(data_paths, latents_paths, network_sha256)
    else:
        sequences = synthetic_sequences(outdir, G, synthetic, pose_sequences.CHUNK_WINDOWS * seq_len, seed, device)
        datasets, layout, fps = [], 'holistic', SYNTHETIC_FPS
    if not sequences:
        raise click.ClickException('no frame with a pose to train on')
    settings = dict(layers=layers, hidden=hidden, seq_len=seq_len, batch=batch, lr=float(lr), synthetic=synthetic or 0,
                    val_fraction=float(val_fraction), seed=seed, w_plus=sequences[0].ws.shape[1] > 1,
                    network_sha256=network_sha256, data_sha256=[projector.dataset_fingerprint(path, d.image_fnames)
                                                                for path, d in zip(data_paths, datasets)],
                    latents_sha256=[file_sha256(path) for path in latents_paths])
    try:
        split = pose_sequences.split_by_sequence(sequences, seq_len, val_fraction, seed)
    except pose_sequences.PoseDataError as err:
        raise click.ClickException(str(err))
    state_path = os.path.join(outdir, STATE_NAME)
    saved_state = load_state(state_path, settings) if os.path.isfile(state_path) else None
    gen_images.report_device(device)

    os.makedirs(outdir, exist_ok=True)
    dnnlib.util.remove_temporary_files(outdir)
    dnnlib.util.Logger(file_name=os.path.join(outdir, LOG_NAME), file_mode='a', should_flush=True)
    print(f'Training options: {json.dumps(dict(settings, epochs=epochs, patience=patience, snap=snap), default=str)}')
    extra = dict(generator_sha256=network_sha256, network=str(network_pkl), layout=layout, fps=float(fps),
                 feature_dim=int(sequences[0].features.shape[1]), training_options=dict(settings))
    state = run_training(outdir, split, datasets, G, settings, extra, saved_state, epochs=epochs, patience=patience, snap=snap,
                         device=device)
    best = state['best']
    print(f'Done: {os.path.join(outdir, MODEL_NAME)} from epoch {best["epoch"]} (val MAE {best["val_mae"]:.5f})',
          file=sys.stdout)


if __name__ == '__main__':
    main()
