"""MiniPuzzle at proxy scale (issue 15; Nemotron-H paper, Sec. 4.1): compress a trained hybrid model.

importance.py  layer ablation (pre-LM-head MSE, loss change) and MLP-neuron activation importance
student.py     the pruned student's layout and its weights copied from the teacher's kept layers and neurons
modeldir.py    a trained model directory (layout, model.py, weights) loaded
distill.py     logit-KD distillation of the student; pipeline.py chains the stages (designer minipuzzle)

Submodules import torch; this package does not, so `designer search` stays torch-free.
"""
