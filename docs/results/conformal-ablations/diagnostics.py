"""Diagnostics for conformal vs projective-distance GATr: data scale, attention logits vs -d^2, norm blindness."""
import sys, json, math, torch, numpy as np
from pathlib import Path
sys.path.insert(0, "/work/main")
from experiments.training.run import build_from_spec, _fit
import gatr.primitives.attention as A
import gatr.layers.attention as LA

DATA = Path("/tmp/expr/out/data")
def spec(alg, seed=0, steps=542, **kw):
    s = {"name": "x", "family": "gatr", "algebra": alg, "augment": False, "width": 8, "depth": 2, "steps": steps,
         "train_trajectories": 1600, "seed": seed, "batch_size": 64, "bodies": 4, "cooldown_fraction": 0.2,
         "horizon": 5, "lr": 0.01, "num_heads": 4, "scheduler": "wsd", "warmup_steps": 20, "weight_decay": 0.0}
    s.update(kw); return s

CAP = []
orig = LA.geometric_sdpa
def capture(alg, q_mv, k_mv, v_mv, q_s, k_s, v_s, attn_mask=None, dropout_p=0.0):
    q = torch.cat([alg.query_features(q_mv).flatten(-2), q_s], -1)
    k = torch.cat([alg.key_features(k_mv).flatten(-2), k_s], -1)
    qm = alg.query_features(q_mv).flatten(-2); km = alg.key_features(k_mv).flatten(-2)
    scale = 1 / math.sqrt(q.shape[-1])
    CAP.append({"logits": (q @ k.transpose(-1, -2) * scale).detach(), "mv_logits": (qm @ km.transpose(-1, -2) * scale).detach()})
    return orig(alg, q_mv, k_mv, v_mv, q_s, k_s, v_s, attn_mask, dropout_p)
LA.geometric_sdpa = capture

def corr_logits(logits, d2):
    # logits (B, H, N, N), d2 (B, N, N): per sample/head/query row, Pearson over keys j != i of logit vs -d2
    B, H, N, _ = logits.shape
    mask = ~torch.eye(N, dtype=bool)
    L = logits[..., mask].reshape(B, H, N, N - 1)
    D = (-d2)[:, mask].reshape(B, 1, N, N - 1).expand_as(L)
    Lc = L - L.mean(-1, keepdim=True); Dc = D - D.mean(-1, keepdim=True)
    r = (Lc * Dc).sum(-1) / (Lc.norm(dim=-1) * Dc.norm(dim=-1) + 1e-12)
    return r.mean().item(), L.std(-1).mean().item()

def stats(module, batch, tag):
    CAP.clear()
    model = module.model
    model.eval()
    with torch.no_grad():
        model(batch)
    x = batch["positions"] - batch["positions"].mean(-2, keepdim=True)
    d2 = ((x[..., :, None, :] - x[..., None, :, :]) ** 2).sum(-1)
    out = {"tag": tag}
    for i, c in enumerate(CAP):
        r, sd = corr_logits(c["logits"], d2)
        rm, sdm = corr_logits(c["mv_logits"], d2)
        out[f"block{i}"] = {"corr_total": round(r, 3), "logit_sd_over_keys": round(sd, 3), "corr_mv": round(rm, 3), "mv_logit_sd": round(sdm, 3)}
    return out

if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "data":
        module, dm, s = build_from_spec(spec("conformal"), DATA); dm.setup("fit")
        b = next(iter(dm.train_dataloader()))
        x = b["positions"] - b["positions"].mean(-2, keepdim=True)
        d = (x[..., :, None, :] - x[..., None, :, :]).norm(dim=-1)
        N = d.shape[-1]; off = d[:, ~torch.eye(N, dtype=bool)]
        print("centred |x|: mean %.3f p95 %.3f; half|x|^2 mean %.4f" % (x.norm(dim=-1).mean(), x.norm(dim=-1).quantile(.95), (0.5 * x.pow(2).sum(-1)).mean()))
        print("pairwise d: mean %.3f p5 %.3f p95 %.3f; d^2/2 mean %.4f" % (off.mean(), off.quantile(.05), off.quantile(.95), (off**2/2).mean()))
        print("sizes mean", b["sizes"].mean().item(), "velocity |v| mean", b["velocity"].norm(dim=-1).mean().item())
        print("target disp rms", (b["target_keypoints"] - b["ballistic_keypoints"]).pow(2).sum(-1).mean().sqrt().item())
        sys.exit()
    alg = mode; seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    sp = spec(alg, seed)
    if len(sys.argv) > 4: sp["model_kwargs"] = {"length_unit": float(sys.argv[4]) if sys.argv[4] != "auto" else "auto"}
    import lightning as L
    L.seed_everything(seed, verbose=False)
    module, dm, s = build_from_spec(sp, DATA); dm.setup("fit")
    batch = next(iter(dm.val_dataloader())) if hasattr(dm, "val_dataloader") else next(iter(dm.train_dataloader()))
    # fit normalization as training would
    module.fit_normalization(dm.train)
    print("length_unit", float(getattr(module.model, "length_unit", torch.tensor(1.0))))
    print(json.dumps(stats(module, batch, f"{alg} init")))
    if len(sys.argv) > 3:
        module, dm, s, trainer, t = _fit(sp, DATA, Path(f"/tmp/abl/diaglog_{alg}_{seed}"))
        print(json.dumps(stats(module, batch, f"{alg} trained")))
