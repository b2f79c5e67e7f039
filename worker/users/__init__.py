"""The partner's registry of users, their locations and resources, and its life at Spark:
import (`importer`), push to Spark (`sync`), enrollment, deletion, and the read side
(`registry`) behind `spark-partner users`."""
